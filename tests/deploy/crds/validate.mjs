// Validates Kubernetes custom resources against the CRD schemas of SOURCES.md.
// stdin: a JSON array of objects; stdout: a JSON array, per object, of its errors
// ([] when valid). An object of a kind without a schema here is an error too.
import { readFileSync } from "node:fs";

const MODELS = "./node_modules/@kubernetes-models/";
const SCHEMAS = {
  "kafka.strimzi.io/v1/Kafka": "strimzi-kafka-operator/_schemas/KafkaStrimziIoV1Kafka.js",
  "kafka.strimzi.io/v1/KafkaNodePool": "strimzi-kafka-operator/_schemas/KafkaStrimziIoV1KafkaNodePool.js",
  "kafka.strimzi.io/v1/KafkaTopic": "strimzi-kafka-operator/_schemas/KafkaStrimziIoV1KafkaTopic.js",
  "kafka.strimzi.io/v1/KafkaUser": "strimzi-kafka-operator/_schemas/KafkaStrimziIoV1KafkaUser.js",
  "postgresql.cnpg.io/v1/Cluster": "cloudnative-pg/_schemas/ComGithubCloudnativePgCloudnativePgApiV1Cluster.js",
  "keda.sh/v1alpha1/ScaledObject": "keda/_schemas/ComGithubKedacoreKedaV2ApisKedaV1alpha1ScaledObject.js",
  "keda.sh/v1alpha1/TriggerAuthentication": "keda/_schemas/ComGithubKedacoreKedaV2ApisKedaV1alpha1TriggerAuthentication.js",
  "monitoring.coreos.com/v1/ServiceMonitor": "prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule": "prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1PrometheusRule.js",
};

if (process.argv[2] === "--kinds") {
  console.log(JSON.stringify(Object.keys(SCHEMAS)));
  process.exit(0);
}
const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (!(key in SCHEMAS)) {
    results.push([`no schema for ${key}`]);
    continue;
  }
  const { validate } = await import(new URL(MODELS + SCHEMAS[key], import.meta.url));
  results.push(validate(obj) ? [] : validate.errors.map((e) => `${e.instancePath || "/"} ${e.keyword} ${JSON.stringify(e.params)}`));
}
console.log(JSON.stringify(results));
