# The project image every KFP component and the KServe predictor run in on a cluster.
# Tag: ghcr.io/uniss-platform/uniss:<package version> (uniss/version.py derives it).
# GPU nodes: build with --build-arg TORCH_INDEX=<CUDA wheel index> to get a CUDA torch.
FROM python:3.11-slim-bookworm
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      espeak-ng festival flite sox libsndfile1 festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts git \
      asterisk-core-sounds-en-wav asterisk-core-sounds-en gcin-voice \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/uniss
COPY pyproject.toml constraints.txt README.md ./
COPY uniss uniss
COPY training training
COPY serving serving
COPY evaluation evaluation
COPY registry registry
COPY infra infra
COPY components components
COPY pipelines pipelines
COPY scripts scripts
COPY params.yaml dvc.yaml ./
RUN pip install --no-cache-dir ${TORCH_INDEX:+--index-url $TORCH_INDEX} "$TORCH_SPEC" \
    && pip install --no-cache-dir -c constraints.txt -e . \
    && python scripts/install_models.py --models-dir /opt/uniss/.models
ENV UNISS_MODELS_DIR=/opt/uniss/.models UNISS_HOME=/var/lib/uniss
ENTRYPOINT ["uniss"]
