# Local stand-ins for AWS's Lambda Python images: Debian sid's python3.14 on a minbase rootfs (no
# registry answers here, so public.ecr.aws/lambda/python and public.ecr.aws/sam/build-python
# cannot be pulled). Deploys use AWS's real runtime and, for Docker bundling, the real SAM image.
#   --target runtime (the default): runs handlers from their built bundles, as Lambda does
#   --target build: the SAM build image's part in CDK Docker bundling (pip on PATH, root)
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE} AS python
ARG PYTHON=python3.14
# The mirror's sid Release file may be past its Valid-Until; the packages are still sid's.
# hadolint ignore=DL3008
RUN apt-get -o Acquire::Check-Valid-Until=false update \
    && apt-get install -y --no-install-recommends "${PYTHON}" "${PYTHON}-venv" ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf "/usr/bin/${PYTHON}" /usr/local/bin/python

FROM python AS build
ARG PYTHON=python3.14
# A builder behind a TLS-inspecting proxy lends its CA bundle as the build secret "ca": this
# local-only image keeps it (a CA certificate, public) so that pip can reach PyPI when the CDK
# runs it.
RUN --mount=type=secret,id=ca if [ -s /run/secrets/ca ]; then cp /run/secrets/ca /etc/ssl/certs/ca-certificates.crt; fi \
    && "${PYTHON}" -m venv /opt/build
ENV PATH=/opt/build/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /asset-input

FROM python AS runtime
ARG PYTHON=python3.14
# The SDK the managed runtime provides in /var/runtime (bundles may rely on it, as the
# dispatcher's does); scripts pass the version the tests use.
ARG BOTO3_VERSION=1.44.8
RUN --mount=type=secret,id=ca if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && "${PYTHON}" -m venv /tmp/pip \
    && /tmp/pip/bin/pip install --no-cache-dir --only-binary=:all: --target /var/runtime "boto3==${BOTO3_VERSION}" \
    && rm -rf /tmp/pip
# Lambda's module search path: the bundle first, then the runtime's own packages.
ENV PYTHONPATH=/var/task:/var/runtime LAMBDA_TASK_ROOT=/var/task
RUN useradd --system --uid 993 sbx_user1051
USER 993
WORKDIR /var/task
ENTRYPOINT ["python"]
