# risgate gateway image (production: see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 1000 --home-dir /var/lib/risgate risgate \
    && mkdir -p /var/lib/risgate /etc/risgate && chown risgate /var/lib/risgate
WORKDIR /opt/risgate
COPY pyproject.toml README.md constraints.txt ./
COPY gateway ./gateway
COPY dicom_nodes ./dicom_nodes
COPY hl7 ./hl7
COPY pricing_norms ./pricing_norms
# The exact versions the tests ran with (constraints.txt), never whatever is newest.
RUN pip install -c constraints.txt .
USER risgate
ENV RISGATE_CONFIG=/etc/risgate/risgate.toml
EXPOSE 11112 2575 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["risgate", "serve"]
