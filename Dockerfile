# syntax=docker/dockerfile:1
#
# One image for both roles of the service:
#   docker run -p 8000:8000 -e REDIS_URL=... -e MODERATION_SECRET_KEY=... IMAGE          (the API)
#   docker run --no-healthcheck -e REDIS_URL=... -e MODERATION_SECRET_KEY=... IMAGE worker
# (the HEALTHCHECK below probes the API's /healthz, which a worker does not serve).
#
# Toxicity model. Containers never download anything at run time (HF_HUB_OFFLINE=1):
#   * By default no Detoxify weights are in the image, and MODERATION_TOXICITY_MODEL=auto falls
#     back at once to the embedded `lite` model.
#   * Bake a Detoxify variant in at build time (checkpoint + Hugging Face config and tokenizer):
#       docker build --build-arg DETOXIFY_VARIANT=original -t moderation .
#     (original, unbiased, multilingual, original-small or unbiased-small); the image then
#     defaults to MODERATION_TOXICITY_MODEL=detoxify:<variant>.
#   * Or mount a checkpoint you already have, with its transformers config/tokenizer directory:
#       docker run -v /srv/models:/models:ro \
#         -e MODERATION_TOXICITY_MODEL=detoxify:/models/x.ckpt \
#         -e MODERATION_DETOXIFY_CONFIG_DIR=/models/config ... IMAGE worker

# ---- builder: a virtualenv at /opt/venv with torch (CPU), the dependencies and the project ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# torch first, pinned, from the CPU index: an unpinned torch from PyPI pulls a multi-GB CUDA
# build. Keep the version in step with TORCH_VERSION in the Makefile.
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

# The dependencies, from pyproject.toml alone (the package itself is still empty here), so
# that editing the source does not reinstall them or download the model again. With the
# optional runtimes (ONNX Runtime, OpenVINO: about 300 MB), among which the workers' `auto`
# engine picks the fastest accurate way to run a Detoxify model on the host's CPU.
COPY pyproject.toml README.md ./
RUN pip install "./[onnx,openvino]"

# Optionally a Detoxify variant's weights and Hugging Face files, inside the image.
ARG DETOXIFY_VARIANT=""
ENV TORCH_HOME=/opt/models/torch \
    HF_HOME=/opt/models/huggingface
RUN mkdir -p "$TORCH_HOME" "$HF_HOME" \
    && if [ -n "$DETOXIFY_VARIANT" ]; then \
        python -c "import os; from detoxify import Detoxify; Detoxify(os.environ['DETOXIFY_VARIANT'])"; \
    fi

# The project itself; then prove that a baked-in model loads with the network forbidden.
COPY moderation ./moderation
COPY workers ./workers
RUN pip install --no-deps --force-reinstall . \
    && if [ -n "$DETOXIFY_VARIANT" ]; then \
        HF_HUB_OFFLINE=1 python -c "import os; from workers.scoring.toxicity import load_toxicity_scorer as load; load('detoxify:' + os.environ['DETOXIFY_VARIANT'])"; \
    fi

# ---- runtime: the venv (which holds the installed source) and the models, nothing else ----
FROM python:3.11-slim

ARG DETOXIFY_VARIANT=""
RUN groupadd --system --gid 10001 moderation \
    && useradd --system --uid 10001 --gid moderation --no-log-init \
        --create-home --home-dir /home/moderation moderation

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder --chown=10001:10001 /opt/models /opt/models

ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TORCH_HOME=/opt/models/torch \
    HF_HOME=/opt/models/huggingface \
    HF_HUB_OFFLINE=1 \
    MODERATION_TOXICITY_MODEL=${DETOXIFY_VARIANT:+detoxify:}${DETOXIFY_VARIANT}

WORKDIR /home/moderation
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=4)"]

ENTRYPOINT ["moderation"]
CMD ["serve"]
