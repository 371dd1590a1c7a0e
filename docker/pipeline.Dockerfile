# The pipeline image: the producer, the Spark driver (spark-submit --master k8s://...) and its
# executor pods, and the database init step. Build from the repository root:
#
#   docker build -f docker/pipeline.Dockerfile -t wikipulse/pipeline:0.1.0 .
#
# Base images are pinned by exact version; the final stage has no compiler, no Maven and no
# package manager cache, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG JRE_IMAGE=eclipse-temurin:17.0.15_6-jre-jammy
ARG MAVEN_IMAGE=maven:3.9.9-eclipse-temurin-17

# The Java runtime, taken as a folder from the Temurin image.
FROM ${JRE_IMAGE} AS jre

# The Kafka connector for Spark, resolved from the same pom as `wikipulse setup`.
FROM ${MAVEN_IMAGE} AS jars
ARG SPARK_VERSION=4.1.1
WORKDIR /build
COPY streaming/jvm/pom.xml pom.xml
RUN mvn -q -B -f pom.xml -P spark dependency:copy-dependencies \
      -DoutputDirectory=/jars/spark-${SPARK_VERSION} -Dspark.version=${SPARK_VERSION}

# wiki_lib and its dependencies in a virtualenv. The install is editable on purpose: the
# library finds its SQL migrations and JVM jars next to the package (/opt/wikipulse).
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /opt/wikipulse
COPY pyproject.toml README.md ./
COPY wiki_lib ./wiki_lib
RUN /opt/venv/bin/pip install --no-cache-dir --config-settings editable_mode=compat -e .

FROM ${PYTHON_IMAGE}
ARG SPARK_VERSION=4.1.1
LABEL org.opencontainers.image.title="wikipulse pipeline" \
      org.opencontainers.image.source="https://github.com/wikipulse/wikipulse" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV JAVA_HOME=/opt/java/openjdk \
    PATH=/opt/venv/bin:/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    SPARK_CONF_DIR=/etc/wikipulse/spark \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 wikipulse \
 && useradd --system --uid 10001 --gid wikipulse --create-home --home-dir /home/wikipulse wikipulse
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=venv /opt/venv /opt/venv
COPY --from=venv /opt/wikipulse /opt/wikipulse
COPY streaming/sql /opt/wikipulse/streaming/sql
COPY streaming/jobs /opt/wikipulse/streaming/jobs
COPY --from=jars /jars /opt/wikipulse/streaming/jvm/lib
COPY docker/entrypoint.sh /usr/local/bin/wikipulse-entrypoint
USER 10001:10001
WORKDIR /home/wikipulse
ENTRYPOINT ["/usr/local/bin/wikipulse-entrypoint"]
CMD ["wikipulse", "--help"]
