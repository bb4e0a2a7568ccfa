// Lab 04 with KafkaJS: a member of click-processors that prints its rebalances and messages.
//
// Install: npm install kafkajs
// Run:     node consumer_kafkajs.js BOOTSTRAP   (Ctrl-C leaves the group cleanly)
//
// Members of one group must agree on an assignor, by name. The page's instances, librdkafka
// (confluent-kafka, kcat, Rust) and Java default to "range", which KafkaJS does not ship, so this
// consumer brings its own; its round robin is offered as well, under the name other clients use.
const { AssignerProtocol, Kafka, PartitionAssigners, logLevel } = require("kafkajs");

const bootstrap = process.argv[2] || "127.0.0.1:9092";

// Kafka's range assignor: per topic, each member in member-id order takes the next run of
// consecutive partitions, and the first members take one extra when they do not divide evenly.
function range({ cluster }) {
  return {
    name: "range",
    version: 0,
    async assign({ members, topics }) {
      const ids = members.map((member) => member.memberId).sort();
      const plan = new Map(ids.map((id) => [id, {}]));
      for (const topic of topics) {
        const partitions = cluster
          .findTopicPartitionMetadata(topic)
          .map((metadata) => metadata.partitionId)
          .sort((a, b) => a - b);
        const each = Math.floor(partitions.length / ids.length);
        const extra = partitions.length % ids.length;
        let next = 0;
        ids.forEach((id, index) => {
          const count = each + (index < extra ? 1 : 0);
          plan.get(id)[topic] = partitions.slice(next, next + count);
          next += count;
        });
      }
      return ids.map((memberId) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: plan.get(memberId),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: "range",
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics }),
      };
    },
  };
}

// KafkaJS's own round robin, named "roundrobin" like everyone else's (KafkaJS says "RoundRobinAssigner").
function roundrobin(config) {
  const kafkajs = PartitionAssigners.roundRobin(config);
  const name = "roundrobin";
  return { ...kafkajs, name, protocol: (subscription) => ({ ...kafkajs.protocol(subscription), name }) };
}

async function main() {
  const kafka = new Kafka({
    clientId: "lab04-kafkajs",
    brokers: bootstrap.split(","),
    logLevel: logLevel.WARN,
  });
  const consumer = kafka.consumer({
    groupId: "click-processors",
    sessionTimeout: 10000,
    heartbeatInterval: 1000,
    partitionAssigners: [range, roundrobin],
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const partitions = payload.memberAssignment["user-clicks"] || [];
    console.log("assigned:", JSON.stringify(partitions));
  });
  await consumer.connect();
  await consumer.subscribe({ topics: ["user-clicks"], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      console.log(`partition ${partition} offset ${message.offset}: ${message.value}`);
    },
  });
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, async () => {
      // disconnect() commits and sends LeaveGroup: the group rebalances at once.
      await consumer.disconnect();
      process.exit(0);
    });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
