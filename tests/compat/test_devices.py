"""Device, memory-info and arena descriptions, checked against onnxruntime's values."""

from __future__ import annotations

import onnxruntime as ort
import pytest

import onnxpy
from onnxpy.runtime.devices import registered_allocators

from .models import mul_w


@pytest.mark.parametrize("name", ["cpu", "cuda", "gpu", "dml", "cann", "npu", "webgpu"])
def test_device_make_matches_onnxruntime(name):
    ours, theirs = onnxpy.OrtDevice.make(name, 1), ort.OrtDevice.make(name, 1)
    assert (ours.device_type(), ours.device_mem_type(), ours.device_vendor_id()) == (
        theirs.device_type(),
        theirs.device_mem_type(),
        theirs.device_vendor_id(),
    )
    assert ours.device_id() == 1


def test_device_constants_and_enums_match_onnxruntime():
    C = ort.capi._pybind_state
    for name in ["cpu", "cuda", "dml", "cann", "fpga", "npu", "gpu", "webgpu", "default_memory"]:
        assert getattr(onnxpy.OrtDevice, name)() == getattr(C.OrtDevice, name)(), name
    pairs = [
        (onnxpy.OrtDeviceVendorId, ort.OrtDeviceVendorId),
        (onnxpy.OrtMemType, C.OrtMemType),
        (onnxpy.OrtAllocatorType, C.OrtAllocatorType),
        (onnxpy.OrtDeviceMemoryType, C.OrtDeviceMemoryType),
        (onnxpy.OrtMemoryInfoDeviceType, C.OrtMemoryInfoDeviceType),
        (onnxpy.OrtSparseFormat, C.OrtSparseFormat),
    ]
    for ours, theirs in pairs:
        assert {k: int(v) for k, v in ours.__members__.items()} == {
            k: int(v) for k, v in theirs.__members__.items()
        }
    with pytest.raises(RuntimeError, match="Unsupported device type: tpu"):
        onnxpy.OrtDevice.make("tpu", 0)


@pytest.mark.parametrize("name", ["Cpu", "Cuda", "CudaPinned", "DML"])
def test_memory_info_matches_onnxruntime(name):
    args = (onnxpy.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxpy.OrtMemType.DEFAULT)
    ours = onnxpy.OrtMemoryInfo(name, *args)
    theirs = ort.OrtMemoryInfo(
        name, ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    assert ours.name == theirs.name and ours.device_id == theirs.device_id
    assert int(ours.mem_type) == int(theirs.mem_type)
    assert int(ours.allocator_type) == int(theirs.allocator_type)
    assert int(ours.device_mem_type) == int(theirs.device_mem_type)
    assert ours.device_vendor_id == theirs.device_vendor_id
    with pytest.raises(RuntimeError, match="not supported"):
        onnxpy.OrtMemoryInfo("Bogus", *args)


def test_memory_info_create_v2():
    info = onnxpy.OrtMemoryInfo.create_v2(
        "Test",
        onnxpy.OrtMemoryInfoDeviceType.GPU,
        0x10DE,
        2,
        onnxpy.OrtDeviceMemoryType.DEFAULT,
        128,
        onnxpy.OrtAllocatorType.ORT_DEVICE_ALLOCATOR,
    )
    assert (info.name, info.device_id, info.device_vendor_id, info.alignment) == (
        "Test",
        2,
        0x10DE,
        128,
    )
    assert info.mem_type == onnxpy.OrtMemType.DEFAULT and not info.is_cpu


def test_arena_cfg_positional_and_dict_forms_match_onnxruntime():
    keys = [
        "max_mem",
        "arena_extend_strategy",
        "initial_chunk_size_bytes",
        "max_dead_bytes_per_chunk",
        "initial_growth_chunk_size_bytes",
        "max_power_of_two_extend_bytes",
    ]
    for args in [(), (8, 0, 4, 2), ({"max_mem": 16, "initial_growth_chunk_size_bytes": 2},)]:
        ours, theirs = (
            onnxpy.OrtArenaCfg(*args),
            ort.OrtArenaCfg(*args) if args else ort.OrtArenaCfg({}),
        )
        assert [getattr(ours, k) for k in keys] == [getattr(theirs, k) for k in keys], args
    with pytest.raises(RuntimeError, match="Invalid OrtArenaCfg option: bogus"):
        onnxpy.OrtArenaCfg({"bogus": 1})


def test_registered_cpu_allocator_is_shared_by_sessions_that_ask():
    info = onnxpy.OrtMemoryInfo(
        "Cpu", onnxpy.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxpy.OrtMemType.DEFAULT
    )
    onnxpy.create_and_register_allocator(info, onnxpy.OrtArenaCfg(0, -1, -1, -1))
    assert registered_allocators()[("CPUExecutionProvider", 0)][0] is info
    so = onnxpy.SessionOptions()
    so.add_session_config_entry("session.use_env_allocators", "1")
    sess = onnxpy.InferenceSession(mul_w().SerializeToString(), so)
    assert sess.get_input_memory_infos()[0].name == "Cpu"
    cuda = onnxpy.OrtMemoryInfo(
        "Cuda", onnxpy.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxpy.OrtMemType.DEFAULT
    )
    with pytest.raises(RuntimeError, match="Only CPU devices"):
        onnxpy.create_and_register_allocator(cuda, None)
    with pytest.raises(RuntimeError, match="only CPUExecutionProvider"):
        onnxpy.create_and_register_allocator_v2("CUDAExecutionProvider", cuda, {}, None)


def test_ep_devices_describe_the_cpu_provider():
    (device,) = onnxpy.get_ep_devices()
    assert device.ep_name == "CPUExecutionProvider"
    assert device.device.type == onnxpy.OrtHardwareDeviceType.CPU
    assert device.ep_metadata["version"] == onnxpy.__ort_api_version__
