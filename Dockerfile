# abonnement in a container: `docker build -t abonnement .`, then
# `docker run --rm -v "$PWD/demo:/config" abonnement run` (the config directory at /config).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ABONNEMENT_CONFIG=/config

WORKDIR /src
COPY pyproject.toml README.md LICENSE MANIFEST.in ./
COPY abonnement ./abonnement
RUN pip install ".[postgres]" && rm -rf /src

RUN useradd --create-home --uid 1000 abonnement && mkdir /config && chown abonnement /config
USER abonnement
WORKDIR /config
VOLUME ["/config"]

ENTRYPOINT ["abonnement"]
CMD ["--help"]
