# One image for every part of ARV: the command chooses the part (api, worker, beat).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ARV_JSON_LOGS=true
# fonts-dejavu-core: the print sheet's Russian line (Pillow's own font has no Cyrillic).
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg nodejs npm fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY scripts ./scripts
# The viewer's browser libraries are copied into the package first, so the install carries them.
RUN scripts/install-viewer-assets.sh && pip install -c constraints.txt .
RUN useradd --create-home arv && mkdir -p /data && chown arv /data && chmod 700 /data
USER arv
ENV ARV_DATA_DIR=/data
EXPOSE 8000
CMD ["arv", "api", "--host", "0.0.0.0"]
