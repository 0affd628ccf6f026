# risgate gateway image (production: see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 1000 --home-dir /var/lib/risgate risgate \
    && mkdir -p /var/lib/risgate /etc/risgate && chown risgate /var/lib/risgate
WORKDIR /opt/risgate
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY dicom_nodes ./dicom_nodes
COPY hl7 ./hl7
COPY pricing_norms ./pricing_norms
RUN pip install .
USER risgate
ENV RISGATE_CONFIG=/etc/risgate/risgate.toml
EXPOSE 11112 2575 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["risgate", "serve"]
