# A local stand-in for the Lambda Python runtime's interpreter: Debian sid's python3.14 on a
# minbase rootfs (no registry answers here, so AWS's public.ecr.aws/lambda/python image cannot
# be pulled). It runs handlers from their built bundles; deploys use AWS's real runtime.
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
ARG PYTHON=python3.14
# The SDK the managed runtime provides in /var/runtime (bundles may rely on it, as the
# dispatcher's does); scripts pass the version the tests use.
ARG BOTO3_VERSION=1.44.8
# The mirror's sid Release file may be past its Valid-Until; the packages are still sid's.
# hadolint ignore=DL3008
RUN --mount=type=secret,id=ca apt-get -o Acquire::Check-Valid-Until=false update \
    && apt-get install -y --no-install-recommends "${PYTHON}" "${PYTHON}-venv" ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf "/usr/bin/${PYTHON}" /usr/local/bin/python \
    && if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && "${PYTHON}" -m venv /tmp/pip \
    && /tmp/pip/bin/pip install --no-cache-dir --only-binary=:all: --target /var/runtime "boto3==${BOTO3_VERSION}" \
    && rm -rf /tmp/pip
# Lambda's module search path: the bundle first, then the runtime's own packages.
ENV PYTHONPATH=/var/task:/var/runtime LAMBDA_TASK_ROOT=/var/task
RUN useradd --system --uid 993 sbx_user1051
USER 993
WORKDIR /var/task
ENTRYPOINT ["python"]
