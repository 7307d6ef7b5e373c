# syntax=docker/dockerfile:1.7
# One image for every agentbus service: `agentbus run <service>` (default: ingress), `agentbus init`.
#   docker build -t agentbus:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -v $PWD/agentbus.yaml:/etc/agentbus/agentbus.yaml:ro agentbus:0.1.0 run ingress

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: build the wheel and install it, with its pinned dependencies, into a virtualenv ---------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m pip install "pip==26.3" "build==1.6.1" "setuptools==84.2.1" "wheel==0.48.0" \
    && python -m venv /opt/agentbus

COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY docs/channels ./docs/channels
RUN python -m build --wheel --no-isolation --outdir /dist . \
    && /opt/agentbus/bin/python -m pip install /dist/agentbus-*.whl \
    && /opt/agentbus/bin/python -m pip uninstall -y pip \
    && /opt/agentbus/bin/python -c "from agentbus.settings import SERVICES; from agentbus.cli.admin import migrations_dir; missing = [s for s in SERVICES if not any(migrations_dir(s).glob('*.sql'))]; assert not missing, f'the wheel lacks the migrations of {missing}'"

# --- runtime: the virtualenv only; no compilers, no package build tools, not root ------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 agentbus \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/agentbus --create-home \
       --shell /usr/sbin/nologin agentbus \
    && python -m pip uninstall -y setuptools wheel pip

COPY --from=builder /opt/agentbus /opt/agentbus
# no configuration in the image: agentbus.yaml is mounted at run time (the chart's ConfigMap, compose's
# volume), so no demo secret ships with it, and a service started without one stops, naming the file

ENV PATH=/opt/agentbus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENTBUS_CONFIG_FILE=/etc/agentbus/agentbus.yaml \
    AGENTBUS_HTTP_HOST=0.0.0.0 \
    AGENTBUS_HTTP_PORT=8080

WORKDIR /home/agentbus
USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('AGENTBUS_HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["agentbus"]
CMD ["run", "ingress"]
