# Three images from one file: `ovs` (ovsdb-server + ovs-vswitchd), `controller` (sggw) and
# `prometheus` (Debian's, scraping sggw with deploy/prometheus.yml; compose profile monitoring).
FROM debian:12-slim AS ovs
RUN apt-get update && apt-get install -y --no-install-recommends openvswitch-switch \
    && rm -rf /var/lib/apt/lists/*
COPY docker/ovs-start /usr/local/bin/ovs-start
CMD ["ovs-start"]

FROM debian:12-slim AS controller
# openvswitch-switch for ovs-vsctl, which bounds the learned tables (max_flows)
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv openvswitch-switch iproute2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sggw
COPY setup.cfg pyproject.toml README.md ./
COPY scripts/ scripts/
COPY app/ app/
COPY flows/ flows/
COPY sggwctl/ sggwctl/
# the same recipe as on a host: pinned Ryu 4.34 venv plus the eventlet compatibility hook;
# absolute constraint paths, since Ryu's setup_requires runs pip from another directory
RUN python3 -m venv .venv \
    && PIP_CONSTRAINT=/opt/sggw/scripts/constraints.txt \
       PIP_BUILD_CONSTRAINT=/opt/sggw/scripts/constraints.txt \
       .venv/bin/pip install --no-cache-dir . \
    && printf '%s\nimport app.eventlet_compat\n' /opt/sggw \
       > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/sggw-eventlet-compat.pth"
ENV PATH=/opt/sggw/.venv/bin:$PATH SGGW_CONFIG=/etc/sggw/sggw.yaml
CMD ["ryu-manager", "app/sggw_app.py"]

FROM debian:12-slim AS prometheus
RUN apt-get update && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/prometheus.yml /etc/prometheus/prometheus.yml
USER prometheus
CMD ["prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/var/lib/prometheus/metrics2", "--web.listen-address=127.0.0.1:9090"]
