# One image for every modelship process: the model server (default entrypoint), the
# `modelship fetch` init container, and the operator (`modelship-operator`, set by the chart).
# Not built in CI here (the build machines have no container engine); `docker build .` elsewhere.
FROM python:3.11-slim-bookworm AS build
# gcc builds the model server's C extension (JSON tensors); only the build stage needs it.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY operator operator
COPY model_server model_server
COPY hack/localcluster hack/localcluster
RUN uv export --locked --no-dev --no-emit-project -o /tmp/requirements.txt \
 && python -m venv /opt/modelship \
 && /opt/modelship/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
 && /opt/modelship/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim-bookworm
COPY --from=build /opt/modelship /opt/modelship
ENV PATH=/opt/modelship/bin:$PATH PYTHONDONTWRITEBYTECODE=1
# The pods run as this user with a read-only root filesystem; /tmp is an emptyDir.
USER 1000:1000
EXPOSE 8500 8501
ENTRYPOINT ["modelship-server"]
