#!/bin/bash
# Entry point of the pipeline image.
#
#   driver ARGS...    spark-submit in client mode from this pod, which names itself as the
#                     driver pod, so the executors it starts are owned by it (and go with it)
#   executor          what Spark on Kubernetes runs in every executor pod (see below)
#   anything else     runs unchanged (`wikipulse ...`)
#
# An executor pod is started from the driver's image with the single argument `executor`;
# Spark describes it in SPARK_* variables (driver URL, id, cores, memory, pod name and IP)
# plus one SPARK_JAVA_OPT_<n> variable per JVM option. This turns that into the executor
# JVM, from pyspark's own jars.
set -euo pipefail

case "${1:-}" in
  driver)
    shift
    exec spark-submit --deploy-mode client \
      --conf "spark.kubernetes.driver.pod.name=${HOSTNAME}" "$@"
    ;;
  executor) ;;
  *) exec "$@" ;;
esac

java_opts=()
for name in $(compgen -A variable SPARK_JAVA_OPT_ | sort -t_ -k4 -n); do
  java_opts+=("${!name}")
done

exec "${JAVA_HOME}/bin/java" \
  "${java_opts[@]}" \
  "-Xms${SPARK_EXECUTOR_MEMORY}" "-Xmx${SPARK_EXECUTOR_MEMORY}" \
  -cp "${SPARK_CONF_DIR}:${SPARK_HOME}/jars/*${SPARK_CLASSPATH:+:${SPARK_CLASSPATH}}" \
  org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
  --driver-url "${SPARK_DRIVER_URL}" \
  --executor-id "${SPARK_EXECUTOR_ID}" \
  --cores "${SPARK_EXECUTOR_CORES}" \
  --app-id "${SPARK_APPLICATION_ID}" \
  --hostname "${SPARK_EXECUTOR_POD_IP}" \
  --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
  --podName "${SPARK_EXECUTOR_POD_NAME}"
