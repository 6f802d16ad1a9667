FROM python:3.11-slim
ARG GPU=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=medportal.settings.production
WORKDIR /app
COPY requirements.txt requirements-gpu.txt ./
RUN pip install --no-cache-dir -r requirements.txt flower==2.2.0 \
 && if [ "$GPU" = "1" ]; then pip uninstall -y tensorflow-cpu && pip install --no-cache-dir -r requirements-gpu.txt; fi
COPY . .
RUN useradd --system --uid 1000 medportal && mkdir -p /srv/media && chown medportal /srv/media
USER medportal
EXPOSE 8000
