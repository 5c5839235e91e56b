// berth's sample Node.js app: "hello from node" on /, the value of an
// environment variable on /env/NAME, on $PORT.
const http = require("http");

const port = process.env.PORT;
if (!port) {
  console.error("PORT is not set");
  process.exit(1);
}

http
  .createServer((req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (path.startsWith("/env/")) {
      const name = decodeURIComponent(path.slice("/env/".length));
      if (!(name in process.env)) {
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end(name + " is not set\n");
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(process.env[name]);
      return;
    }
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("hello from node\n");
  })
  .listen(port, () => console.log(`listening on :${port}`));

process.on("SIGTERM", () => process.exit(0));
