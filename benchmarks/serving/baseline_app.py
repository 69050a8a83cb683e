"""The baseline: a model behind FastAPI the way the ONNX tutorials write it.

One onnxruntime session at import, one ``session.run`` per request inside an ``async def`` route,
pydantic models for the body (here shaped like a v2 request, so that the load generator sends
the very same bytes to both servers), ``.tolist()`` for the answer. Run it as the tutorials do:

    ONNX_MODEL=model.onnx uvicorn benchmarks.serving.baseline_app:app --port 9000
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

session = ort.InferenceSession(os.environ["ONNX_MODEL"], providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
output_name = session.get_outputs()[0].name
app = FastAPI()


class Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list


class InferRequest(BaseModel):
    inputs: list[Tensor]


@app.post("/v2/models/{model_name}/infer")
async def infer(model_name: str, request: InferRequest) -> dict:
    tensor = request.inputs[0]
    x = np.array(tensor.data, dtype=np.float32).reshape(tensor.shape)
    y = session.run([output_name], {input_name: x})[0]
    output = {"name": output_name, "datatype": "FP32", "shape": list(y.shape)}
    return {"model_name": model_name, "outputs": [{**output, "data": y.ravel().tolist()}]}
