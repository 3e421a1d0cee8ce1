# The capacity service, as compose.yaml runs it (two replicas behind the proxy).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
# The package carries its Alembic config and migrations (capacity/alembic.ini, capacity/migrations/).
COPY capacity ./capacity
# Exact versions from constraints.txt, so every build installs the same dependencies.
RUN pip install --constraint=constraints.txt .

RUN useradd --create-home --uid 10001 capacity
USER capacity

EXPOSE 8000
# `capacity serve` migrates to head before it serves (replicas take turns under an advisory lock).
CMD ["capacity", "serve", "--host", "0.0.0.0"]
