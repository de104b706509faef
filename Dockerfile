# One image for web, worker and beat; docker-compose.yml picks the process.
FROM python:3.11-slim

# Production unless told otherwise: without SECRET_KEY the image refuses to start.
ENV DEBUG=False \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# Static files are baked into the image; the key below exists only for this step.
RUN DEBUG=False SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput -v 0

RUN useradd --create-home --uid 10001 tradewatch && mkdir -p /app/var && chown tradewatch /app/var
USER tradewatch
EXPOSE 8000
CMD ["python", "-m", "monitoring_site.launcher", "web"]
