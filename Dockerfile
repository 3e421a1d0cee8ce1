# The capacity service, as compose.yaml runs it (two replicas behind the proxy).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY capacity ./capacity
COPY migrations ./migrations
RUN pip install .

# `capacity migrate` finds alembic.ini and migrations/ next to the `capacity` package it runs from, and
# they are not part of the installed wheel: run the package from /app, where they are.
ENV PYTHONPATH=/app

RUN useradd --create-home --uid 10001 capacity
USER capacity

EXPOSE 8000
CMD ["sh", "-c", "capacity migrate && capacity serve --host 0.0.0.0"]
