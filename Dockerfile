# One image for every service: the command picks which one runs (`wheelyard service <name>`,
# or `wheelyard serve` for the embedded one-process registry).
# Pinned by tag and digest (the same image in both stages); uv at the version uv.lock was made with.
FROM python:3.11.13-slim@sha256:9bffe4353b925a1656688797ebc68f9c525e79b1d377a764d232182a519eeec4 AS build
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY shared shared
COPY services services
COPY src src
# Every uv workspace member must be present for `uv sync --frozen` (testing is not installed).
COPY testing testing
RUN uv sync --frozen --no-dev --no-editable && rm -rf /root/.cache

FROM python:3.11.13-slim@sha256:9bffe4353b925a1656688797ebc68f9c525e79b1d377a764d232182a519eeec4
# uid and gid 10001: docker-compose.yml and deploy/k8s run (and hand the keys to) exactly these.
RUN groupadd --system --gid 10001 wheelyard \
    && useradd --system --uid 10001 --gid 10001 --home /data wheelyard \
    && mkdir -p /data && chown wheelyard:wheelyard /data
COPY --from=build /src/.venv /opt/wheelyard
ENV PATH=/opt/wheelyard/bin:$PATH WHEELYARD_DATA_DIR=/data PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /data
EXPOSE 8000
CMD ["wheelyard", "serve", "--host", "0.0.0.0", "--port", "8000"]
