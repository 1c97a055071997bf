# One image for every modelship process: the model server (default entrypoint), the
# `modelship fetch` init container, and the operator (`modelship-operator`, set by the chart).
# `docker build .` uses the official Python image. hack/images/build.sh builds this same file with
# buildah, without a registry, on a Debian bookworm base it makes with debootstrap
# (--build-arg BASE_IMAGE=...); tests/e2e/test_images.py runs the result.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# gcc builds the model server's C extension (JSON tensors); only the build stage needs it.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# The locked dependencies first: this layer is reused until pyproject.toml or uv.lock change.
# The export is the whole locked closure, hashed, so pip installs it as it is (--no-deps): pip's
# resolver would refuse uv's override of python-dateutil (see pyproject.toml).
COPY pyproject.toml uv.lock README.md ./
RUN uv export --locked --no-dev --no-emit-project -o /tmp/requirements.txt \
 && python -m venv /opt/modelship \
 && /opt/modelship/bin/pip install --no-cache-dir --no-deps -r /tmp/requirements.txt
COPY operator operator
COPY model_server model_server
COPY hack/localcluster hack/localcluster
RUN /opt/modelship/bin/pip install --no-cache-dir --no-deps .

FROM ${BASE_IMAGE}
COPY --from=build /opt/modelship /opt/modelship
ENV PATH=/opt/modelship/bin:$PATH PYTHONDONTWRITEBYTECODE=1
# The pods run as this user with a read-only root filesystem; /tmp is an emptyDir.
USER 1000:1000
EXPOSE 8500 8501
ENTRYPOINT ["modelship-server"]
