"""Devices, memory descriptions and allocator settings, with onnxruntime's names and values.

onnxpy computes on the CPU, in memory NumPy allocates. These objects exist so that code written
for onnxruntime can describe where its tensors live: every description of CPU memory is
accepted and means what it says (host memory, device 0); a description of another device is
accepted as a description (``OrtDevice.make("cuda", 0)`` is a value like any other) but refused
wherever memory would have to be allocated or read there.

An arena allocator registered with :func:`create_and_register_allocator` is honoured the one way
onnxpy has an arena: sessions created with the ``session.use_env_allocators`` entry keep freed
tensors in the process heap (runtime/memory.py), as sessions with ``enable_cpu_mem_arena`` do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from onnxpy.errors import RuntimeException
from onnxpy.version import ORT_API_VERSION

__all__ = [
    "OrtAllocatorType",
    "OrtArenaCfg",
    "OrtDevice",
    "OrtDeviceMemoryType",
    "OrtDeviceVendorId",
    "OrtEpDevice",
    "OrtHardwareDevice",
    "OrtHardwareDeviceType",
    "OrtMemType",
    "OrtMemoryInfo",
    "OrtMemoryInfoDeviceType",
    "cpu_ep_device",
    "cpu_memory_info",
    "create_and_register_allocator",
    "create_and_register_allocator_v2",
    "get_ep_devices",
    "registered_allocators",
]


class OrtDeviceVendorId(enum.IntEnum):
    NONE = 0
    AMD = 0x1002
    NVIDIA = 0x10DE
    ARM = 0x13B5
    MICROSOFT = 0x1414
    HUAWEI = 0x19E5
    QUALCOMM = 0x5143
    INTEL = 0x8086


class OrtMemType(enum.IntEnum):
    CPU_INPUT = -2
    CPU_OUTPUT = -1
    CPU = -1  # an alias of CPU_OUTPUT, as in onnxruntime
    DEFAULT = 0


class OrtAllocatorType(enum.IntEnum):
    INVALID = -1
    ORT_DEVICE_ALLOCATOR = 0
    ORT_ARENA_ALLOCATOR = 1


class OrtDeviceMemoryType(enum.IntEnum):
    DEFAULT = 0
    HOST_ACCESSIBLE = 5


class OrtMemoryInfoDeviceType(enum.IntEnum):
    CPU = 0
    GPU = 1
    FPGA = 2
    NPU = 3


class OrtHardwareDeviceType(enum.IntEnum):
    CPU = 0
    GPU = 1
    NPU = 2


# OrtDevice.make(name): device type and vendor of each device name onnxruntime accepts.
_DEVICE_NAMES: dict[str, tuple[int, int]] = {
    "cpu": (0, OrtDeviceVendorId.NONE),
    "cuda": (1, OrtDeviceVendorId.NVIDIA),
    "gpu": (1, OrtDeviceVendorId.NONE),
    "dml": (1, OrtDeviceVendorId.MICROSOFT),
    "webgpu": (1, OrtDeviceVendorId.NONE),
    "cann": (3, OrtDeviceVendorId.HUAWEI),
    "npu": (3, OrtDeviceVendorId.NONE),
}


class OrtDevice:
    """A device: type (0 CPU, 1 GPU, 2 FPGA, 3 NPU), memory type, vendor id and device id.

    Serves both of onnxruntime's spellings: ``OrtDevice.make("cpu", 0).device_type()`` and the
    low-level ``OrtDevice(device_type, mem_type, vendor_id, device_id).mem_type()``.
    """

    __slots__ = ("_type", "_mem_type", "_vendor_id", "_device_id")

    def __init__(
        self, device_type: int = 0, mem_type: int = 0, vendor_id: int = 0, device_id: int = 0
    ) -> None:
        self._type = int(device_type)
        self._mem_type = int(mem_type)
        self._vendor_id = int(vendor_id)
        self._device_id = int(device_id)

    @classmethod
    def make(cls, ort_device_name: str, device_id: int) -> OrtDevice:
        """Device ``ort_device_name`` ('cpu', 'cuda', 'dml', ...) number ``device_id``."""
        try:
            device_type, vendor = _DEVICE_NAMES[str(ort_device_name)]
        except KeyError:
            raise RuntimeException(f"Unsupported device type: {ort_device_name}") from None
        return cls(device_type, OrtDeviceMemoryType.DEFAULT, vendor, device_id)

    # onnxruntime's static device-type constants
    @staticmethod
    def cpu() -> int:
        return 0

    @staticmethod
    def cuda() -> int:
        return 1

    @staticmethod
    def gpu() -> int:
        return 1

    @staticmethod
    def webgpu() -> int:
        return 1

    @staticmethod
    def fpga() -> int:
        return 2

    @staticmethod
    def npu() -> int:
        return 3

    @staticmethod
    def cann() -> int:
        return 3

    @staticmethod
    def dml() -> int:
        return 4

    @staticmethod
    def default_memory() -> int:
        return 0

    def device_id(self) -> int:
        return self._device_id

    def device_type(self) -> int:
        return self._type

    def device_mem_type(self) -> int:
        return self._mem_type

    def device_vendor_id(self) -> int:
        return self._vendor_id

    mem_type = device_mem_type
    vendor_id = device_vendor_id

    def _get_c_device(self) -> OrtDevice:
        return self

    @property
    def is_cpu(self) -> bool:
        return self._type == 0

    def name(self) -> str:
        """The device name device_name() reports for values on this device ('cpu', 'cuda')."""
        if self._type == 0:
            return "cpu"
        if self._vendor_id == OrtDeviceVendorId.NVIDIA:
            return "cuda"
        return next((n for n, spec in _DEVICE_NAMES.items() if spec[0] == self._type), "unknown")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrtDevice) and (
            self._type,
            self._mem_type,
            self._vendor_id,
            self._device_id,
        ) == (other._type, other._mem_type, other._vendor_id, other._device_id)

    def __hash__(self) -> int:
        return hash((self._type, self._mem_type, self._vendor_id, self._device_id))

    def __repr__(self) -> str:
        return (
            f"OrtDevice(device_type={self._type}, mem_type={self._mem_type}, "
            f"vendor_id={self._vendor_id}, device_id={self._device_id})"
        )


def require_cpu(device_type: str | OrtDevice, what: str) -> None:
    """Refuse memory on anything but the CPU, naming the operation that needed it."""
    name = device_type.name() if isinstance(device_type, OrtDevice) else str(device_type).lower()
    if name != "cpu":
        raise RuntimeException(
            f"{what}: device '{name}' is not available; onnxpy computes on the CPU only "
            "(use device 'cpu')"
        )


# OrtMemoryInfo names onnxruntime knows: device type, memory type and vendor.
_MEMORY_NAMES: dict[str, tuple[int, int, int]] = {
    "Cpu": (0, OrtDeviceMemoryType.DEFAULT, OrtDeviceVendorId.NONE),
    "Cuda": (1, OrtDeviceMemoryType.DEFAULT, OrtDeviceVendorId.NVIDIA),
    "CudaPinned": (0, OrtDeviceMemoryType.HOST_ACCESSIBLE, OrtDeviceVendorId.NVIDIA),
    "DML": (1, OrtDeviceMemoryType.DEFAULT, OrtDeviceVendorId.MICROSOFT),
}


class OrtMemoryInfo:
    """Where a tensor's memory lives: allocator name, type, device and memory kind."""

    def __init__(
        self,
        name: str,
        alloc_type: OrtAllocatorType | int,
        device_id: int,
        mem_type: OrtMemType | int,
    ) -> None:
        if name not in _MEMORY_NAMES:
            raise RuntimeException(
                f"Specified device is not supported: memory name '{name}' (known: "
                f"{sorted(_MEMORY_NAMES)}). Try OrtMemoryInfo.create_v2."
            )
        device_type, device_mem_type, vendor = _MEMORY_NAMES[name]
        self._set(name, alloc_type, device_id, mem_type, device_type, device_mem_type, vendor)

    def _set(self, name, alloc_type, device_id, mem_type, device_type, device_mem_type, vendor):
        self.name = str(name)
        self.allocator_type = OrtAllocatorType(int(alloc_type))
        self.device_id = int(device_id)
        self.mem_type = OrtMemType(int(mem_type))
        self.device_type = OrtMemoryInfoDeviceType(int(device_type))
        self.device_mem_type = OrtDeviceMemoryType(int(device_mem_type))
        self.device_vendor_id = int(vendor)

    @classmethod
    def create_v2(
        cls,
        name: str,
        device_type: OrtMemoryInfoDeviceType | int,
        vendor_id: int,
        device_id: int,
        device_mem_type: OrtDeviceMemoryType | int,
        alignment: int,
        allocator_type: OrtAllocatorType | int,
    ) -> OrtMemoryInfo:
        """A memory description from its parts (any name; ``alignment`` is informational)."""
        info = cls.__new__(cls)
        info._set(
            name,
            allocator_type,
            device_id,
            OrtMemType.DEFAULT,
            device_type,
            device_mem_type,
            vendor_id,
        )
        info.alignment = int(alignment)
        return info

    @property
    def is_cpu(self) -> bool:
        return self.device_type == OrtMemoryInfoDeviceType.CPU

    def __repr__(self) -> str:
        return (
            f"OrtMemoryInfo(name='{self.name}', allocator_type={self.allocator_type.name}, "
            f"device_id={self.device_id}, mem_type={self.mem_type.name})"
        )


def cpu_memory_info(arena: bool = True) -> OrtMemoryInfo:
    """The memory every onnxpy tensor lives in."""
    kind = OrtAllocatorType.ORT_ARENA_ALLOCATOR if arena else OrtAllocatorType.ORT_DEVICE_ALLOCATOR
    return OrtMemoryInfo("Cpu", kind, 0, OrtMemType.DEFAULT)


_ARENA_KEYS = (
    "max_mem",
    "arena_extend_strategy",
    "initial_chunk_size_bytes",
    "max_dead_bytes_per_chunk",
    "initial_growth_chunk_size_bytes",
    "max_power_of_two_extend_bytes",
)


class OrtArenaCfg:
    """Arena settings: ``OrtArenaCfg(max_mem, strategy, initial_chunk, max_dead)`` or a dict.

    onnxpy's arena is the process heap kept warm (runtime/memory.py), so the sizes are recorded
    and reported, not enforced.
    """

    def __init__(self, *args: Any) -> None:
        values = dict.fromkeys(_ARENA_KEYS, -1)
        values["max_mem"] = 0
        if len(args) == 1 and isinstance(args[0], dict):
            for key, value in args[0].items():
                if key not in values:
                    raise RuntimeException(f"Invalid OrtArenaCfg option: {key}")
                values[key] = int(value)
        elif len(args) == 4:
            for key, value in zip(_ARENA_KEYS[:4], args):
                values[key] = int(value)
        elif args:
            raise TypeError(
                "OrtArenaCfg takes (max_mem, arena_extend_strategy, initial_chunk_size_bytes, "
                "max_dead_bytes_per_chunk) or one dict of options"
            )
        for key, value in values.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)}" for k in _ARENA_KEYS)
        return f"OrtArenaCfg({inner})"


_ALLOCATORS: dict[tuple[str, int], tuple[OrtMemoryInfo, OrtArenaCfg | None]] = {}


def create_and_register_allocator(
    mem_info: OrtMemoryInfo, arena_cfg: OrtArenaCfg | None = None
) -> None:
    """Register a process-wide CPU allocator that sessions share under
    ``session.use_env_allocators = 1`` (registering again replaces the settings)."""
    if not isinstance(mem_info, OrtMemoryInfo):
        raise TypeError(f"mem_info must be an OrtMemoryInfo, got {type(mem_info).__name__}")
    if not mem_info.is_cpu:
        raise RuntimeException(
            "Error when creating and registering allocator: Only CPU devices are supported "
            f"(got '{mem_info.name}'); onnxpy computes on the CPU only."
        )
    _ALLOCATORS[("CPUExecutionProvider", mem_info.device_id)] = (mem_info, arena_cfg)


def create_and_register_allocator_v2(
    provider_type: str,
    mem_info: OrtMemoryInfo,
    provider_options: dict[str, str] | None = None,
    arena_cfg: OrtArenaCfg | None = None,
) -> None:
    """As :func:`create_and_register_allocator`, for a named provider (only the CPU one here)."""
    if provider_type != "CPUExecutionProvider":
        raise RuntimeException(
            f"Cannot register an allocator for '{provider_type}': onnxpy provides only "
            "CPUExecutionProvider"
        )
    create_and_register_allocator(mem_info, arena_cfg)


def registered_allocators() -> dict[tuple[str, int], tuple[OrtMemoryInfo, OrtArenaCfg | None]]:
    return dict(_ALLOCATORS)


@dataclass(frozen=True)
class OrtHardwareDevice:
    """The hardware an execution provider runs on (here: the host CPU)."""

    type: OrtHardwareDeviceType = OrtHardwareDeviceType.CPU
    vendor_id: int = 0
    device_id: int = 0
    vendor: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OrtEpDevice:
    """An execution provider paired with the device it serves."""

    ep_name: str
    ep_vendor: str
    device: OrtHardwareDevice
    ep_metadata: dict[str, str] = field(default_factory=dict)
    ep_options: dict[str, str] = field(default_factory=dict)

    @property
    def memory_info(self) -> OrtMemoryInfo:
        return cpu_memory_info()


def cpu_ep_device() -> OrtEpDevice:
    return OrtEpDevice(
        "CPUExecutionProvider",
        "onnxpy",
        OrtHardwareDevice(),
        ep_metadata={"version": ORT_API_VERSION},
    )


def get_ep_devices() -> list[OrtEpDevice]:
    """The (provider, device) pairs available: the CPU provider on the host."""
    return [cpu_ep_device()]
