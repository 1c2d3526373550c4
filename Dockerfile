# The ledger's CLI, projector and consumers, as one image (used by compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY schemas ./schemas
COPY projections ./projections
COPY consumers ./consumers
RUN pip install --no-cache-dir '.[postgres]'
ENTRYPOINT ["ledger"]
CMD ["--help"]
