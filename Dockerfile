# onnxpy serve in a container: a slim Python base, a non-root user, the model repository at /models.
#
#   docker build -t onnxpy-serve .
#   docker run --rm -p 8000:8000 -p 8001:8001 -v "$PWD/models:/models:ro" onnxpy-serve
#
# Written for the tutorials' container deployments, but NOT built or run on the machines this
# project is developed on (they have no container engine): treat it as a reviewed starting point.
# The server itself is tested (tests/serving); this file is not.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
# constraints.txt pins the versions CI tests; only the serve extra's packages are installed.
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt ".[serve]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /home/onnxpy onnxpy
COPY --from=build /install /usr/local
USER 10001
# Bind every interface inside the container (the server's own default is 127.0.0.1); numba's
# compile cache and onnxpy's cache go to the user's home, which is writable.
ENV ONNXPY_HOST=0.0.0.0 \
    ONNXPY_CACHE_DIR=/home/onnxpy/.cache/onnxpy \
    NUMBA_CACHE_DIR=/home/onnxpy/.cache/numba \
    PYTHONUNBUFFERED=1
EXPOSE 8000 8001
# Ready means every model meant to be loaded is loaded (Triton's strict readiness).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status != 200)"]
# Exec form: onnxpy is PID 1 and gets SIGTERM itself, so requests in flight drain before exit.
ENTRYPOINT ["onnxpy", "serve"]
CMD ["/models"]
