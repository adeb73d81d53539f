# One image for every service: the command picks which one runs (`wheelyard service <name>`,
# or `wheelyard serve` for the embedded one-process registry).
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir uv
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY shared shared
COPY services services
COPY src src
RUN uv sync --frozen --no-dev --no-editable && rm -rf /root/.cache

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /data wheelyard && mkdir -p /data && chown wheelyard /data
COPY --from=build /src/.venv /opt/wheelyard
ENV PATH=/opt/wheelyard/bin:$PATH WHEELYARD_DATA_DIR=/data
USER wheelyard
WORKDIR /data
EXPOSE 8000
CMD ["wheelyard", "serve", "--host", "0.0.0.0", "--port", "8000"]
