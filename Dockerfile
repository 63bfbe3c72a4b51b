# agent-exporter: the exporter (default command) and `agent-exporter demo` (compose demo profile).
# Every dependency ships manylinux wheels, so the slim image needs no compiler.
FROM python:3.12.8-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid, so that mounted secrets can be made readable to it (docs/stack.md).
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin exporter

# .dockerignore lets only the package sources in.
COPY . /src
RUN pip install /src && rm -rf /src

USER 10001:10001
WORKDIR /tmp
EXPOSE 9842

# The slim image has no curl or wget; the port follows AGENT_EXPORTER_LISTEN when it is set.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AGENT_EXPORTER_LISTEN', ':9842').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

CMD ["agent-exporter"]
