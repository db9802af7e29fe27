# The podtap agent image: `podtap agent` and nothing else (no Textual, no Kubernetes client).
#
#   docker build -t podtap-agent:0.1.0 .
#
# With --agent-from-image, podtap runs it as the agent Job of each node (see docs/kubernetes.md);
# by default it needs no image of its own. The agent builds its packet filter itself, so the
# image needs no libpcap.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY tui ./tui
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# The client's dependencies are left out on purpose: only the agent runs here, and `podtap`
# routes `podtap agent` before importing anything else.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/podtap-*.whl \
 && pip install --no-cache-dir "msgspec>=0.18" "websockets>=13" \
 && podtap agent --help > /dev/null
ENV PYTHONUNBUFFERED=1
# Only what the agent needs to write is in memory: the Job's root filesystem is read-only.
ENV PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["podtap", "agent"]
