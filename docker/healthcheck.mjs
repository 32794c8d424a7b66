// Container health check: grpc.health.v1.Health/Check on one of this service's listeners,
// named by the variable that configures it (e.g. CPM_API_LISTEN). Exit 0 when SERVING.
// The sync receiver's port speaks TLS when CPM_SYNC_TLS_CERT is set; the check then only
// needs the handshake to complete, not to trust the certificate.
// The web console's (CPM_CONSOLE_LISTEN) speaks HTTP: exit 0 when its page answers 200.
// Usage: node docker/healthcheck.mjs CPM_API_LISTEN 0.0.0.0:50051
import http from "node:http";
import grpc from "@grpc/grpc-js";

const [variable = "CPM_API_LISTEN", fallback = "0.0.0.0:50051"] = process.argv.slice(2);
const listen = process.env[variable] || fallback;
const target = listen.replace(/^(0\.0\.0\.0|\[::\]|::)(?=:)/, "127.0.0.1");

if (variable === "CPM_CONSOLE_LISTEN") checkHttp();
else checkGrpc();

function checkHttp() {
  const req = http.get(`http://${target}/`, { timeout: 4000 }, (res) => {
    res.resume();
    console.log(`${variable} ${target}: HTTP ${res.statusCode}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
  req.on("timeout", () => req.destroy(new Error("no answer within 4 s")));
  req.on("error", (err) => {
    console.error(`${variable} ${target}: ${err.message}`);
    process.exit(1);
  });
}

function checkGrpc() {
  const tls =
    variable === "CPM_SYNC_LISTEN" && process.env.CPM_SYNC_TLS_CERT && process.env.INSTANCE_SYNC_ALLOW_HTTP !== "true";
  const credentials = tls
    ? grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined })
    : grpc.credentials.createInsecure();

  // HealthCheckRequest{service: ""} is the empty message; the response's field 1 is the status.
  const Health = grpc.makeGenericClientConstructor(
    {
      Check: {
        path: "/grpc.health.v1.Health/Check",
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.alloc(0),
        requestDeserialize: (b) => b,
        responseSerialize: (b) => b,
        responseDeserialize: (b) => b,
      },
    },
    "Health",
  );
  const client = new Health(target, credentials);
  client.Check({}, { deadline: Date.now() + 4000 }, (err, res) => {
    client.close();
    if (err) {
      console.error(`${variable} ${target}: ${err.message}`);
      process.exit(1);
    }
    const serving = res.length >= 2 && res[0] === 0x08 && res[1] === 1;
    console.log(`${variable} ${target}: ${serving ? "SERVING" : "NOT_SERVING"}`);
    process.exit(serving ? 0 : 1);
  });
}
