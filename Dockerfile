# Slim image, non-root, configured by MICROWISH_* environment variables.
#   docker build -t microwish .
#   docker run -e MICROWISH_ENV=production -e MICROWISH_SECRET_KEY=... \
#     -e MICROWISH_DATABASE_URL=postgresql://user@db:5432/microwish -p 8000:8000 microwish
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MICROWISH_ENV=production

RUN useradd --create-home --uid 10001 microwish
WORKDIR /srv/microwish

# Dependencies first, so code changes don't reinstall them.
COPY pyproject.toml README.md ./
COPY app/__init__.py app/__init__.py
RUN pip install . && pip uninstall -y microwish

COPY app app
COPY migrations migrations
COPY alembic.ini ./
RUN pip install --no-deps -e . && mkdir -p data && chown microwish:microwish data

USER microwish
EXPOSE 8000
CMD ["sh", "-c", "microwish migrate && exec microwish serve --host 0.0.0.0 --port 8000"]
