# The OHIF Viewer's prebuilt dist/ (version and integrity pinned in package.json), fetched at build time only.
FROM node:20-slim AS viewer
WORKDIR /build
COPY package.json ./
COPY bin/_npm.sh bin/
RUN bash -c 'source bin/_npm.sh && ensure_ohif_viewer'

FROM python:3.11-slim
ARG GPU=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=medportal.settings.production
WORKDIR /app
COPY requirements.txt requirements-gpu.txt ./
RUN pip install --no-cache-dir -r requirements.txt flower==2.2.0 \
 && if [ "$GPU" = "1" ]; then pip uninstall -y tensorflow-cpu && pip install --no-cache-dir -r requirements-gpu.txt; fi
COPY . .
COPY --from=viewer /build/node_modules/@ohif/app/dist node_modules/@ohif/app/dist
RUN useradd --system --uid 1000 medportal && mkdir -p /srv/media && chown medportal /srv/media
USER medportal
EXPOSE 8000
