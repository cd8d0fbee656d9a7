# abonnement in a container: `docker build -t abonnement .`, then
# `docker run --rm -v "$PWD/demo:/config" abonnement run` (the config directory at /config),
# or `docker run --rm -p 8000:8000 -v "$PWD/demo:/config" abonnement serve --host 0.0.0.0`.
# PYTHON_IMAGE: any Debian-based image with Python 3.11+ and its venv module.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/abonnement/bin:$PATH \
    ABONNEMENT_CONFIG=/config

# A venv of its own: the same on images whose system Python is externally managed (PEP 668).
WORKDIR /src
COPY pyproject.toml README.md LICENSE MANIFEST.in ./
COPY abonnement ./abonnement
RUN python3 -m venv /opt/abonnement \
    && /opt/abonnement/bin/pip install ".[postgres,server]" \
    && rm -rf /src

RUN useradd --create-home --uid 1000 abonnement && mkdir /config && chown abonnement /config
USER abonnement
WORKDIR /config
VOLUME ["/config"]
EXPOSE 8000

ENTRYPOINT ["abonnement"]
CMD ["--help"]
