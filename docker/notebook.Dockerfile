# The single-user notebook image of the JupyterHub (Zero to JupyterHub `singleuser.image`),
# also the dashboard image: JupyterLab, Voila and the jupyter-server-proxy entries
# (dashboard, Spark UI) over wiki_lib, with a Java runtime for local Spark sessions.
# Build from the repository root:
#
#   docker build -f docker/notebook.Dockerfile -t wikipulse/notebook:0.1.0 .
#
# The Voila Deployment runs this image too: the dashboards need exactly the notebook stack,
# so a separate image would be a copy of this one.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG JRE_IMAGE=eclipse-temurin:17.0.15_6-jre-jammy
ARG MAVEN_IMAGE=maven:3.9.9-eclipse-temurin-17

FROM ${JRE_IMAGE} AS jre

# The Kafka connector, so notebooks can read a topic with Spark as the stream job does.
FROM ${MAVEN_IMAGE} AS jars
ARG SPARK_VERSION=4.1.1
WORKDIR /build
COPY streaming/jvm/pom.xml pom.xml
RUN mvn -q -B -f pom.xml -P spark dependency:copy-dependencies \
      -DoutputDirectory=/jars/spark-${SPARK_VERSION} -Dspark.version=${SPARK_VERSION}

# wiki_lib (editable, so it finds its migrations and jars next to it), and JupyterHub at the
# version the pinned chart runs, for `jupyterhub-singleuser`.
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /opt/wikipulse
COPY pyproject.toml README.md ./
COPY wiki_lib ./wiki_lib
RUN /opt/venv/bin/pip install --no-cache-dir --config-settings editable_mode=compat -e . \
 && /opt/venv/bin/pip install --no-cache-dir "jupyterhub==5.5.4"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="wikipulse notebook" \
      org.opencontainers.image.source="https://github.com/wikipulse/wikipulse" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/opt/venv/bin:/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    SHELL=/bin/bash
# uid 1000 / gid 100: what Zero to JupyterHub runs single-user servers as by default.
RUN useradd --uid 1000 --gid 100 --create-home --home-dir /home/jovyan --shell /bin/bash jovyan
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=venv /opt/venv /opt/venv
COPY --from=venv /opt/wikipulse /opt/wikipulse
COPY streaming/sql /opt/wikipulse/streaming/sql
COPY --from=jars /jars /opt/wikipulse/streaming/jvm/lib
COPY notebooks /opt/wikipulse/notebooks
COPY voila_dashboards /opt/wikipulse/voila_dashboards
USER 1000:100
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
