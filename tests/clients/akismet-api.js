// Drives npm's akismet-api (the client Coral Talk uses), unmodified, against the service.
// The client puts the key in the host name (http://KEY.HOST/1.1/comment-check) and Node
// lowercases host names. The test serves on localhost, so names under .localhost resolve to
// 127.0.0.1 here, as a resolver that follows RFC 6761 would, without touching /etc/hosts.
// Usage: node akismet-api.js HOST:PORT KEY BLOG; prints one JSON object of the client's answers.
"use strict";
const dns = require("dns");

const systemLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (/\.localhost$/i.test(hostname)) {
    if (typeof options === "function") [callback, options] = [options, {}];
    if (options && options.all) return process.nextTick(callback, null, [{ address: "127.0.0.1", family: 4 }]);
    return process.nextTick(callback, null, "127.0.0.1", 4);
  }
  return systemLookup.call(dns, hostname, options, callback);
};

const { AkismetClient } = require("akismet-api");

async function main() {
  const [host, key, blog] = process.argv.slice(2);
  const client = new AkismetClient({ key, blog, host, protocol: "http", lang: "en" });
  const visitor = { ip: "203.0.113.7", useragent: "Mozilla/5.0 (X11)" };
  const answers = { verified: await client.verifyKey() };
  if (answers.verified) {
    answers.spam = await client.checkSpam({
      ...visitor,
      name: "Pills",
      content:
        "Buy cheap viagra now!!! http://pills.example/buy and http://cheap-meds.example click here to order",
    });
    answers.ham = await client.checkSpam({
      ...visitor,
      name: "Ann",
      content: "Thanks for the thoughtful article; the section on budgets was very clear.",
      permalink: `${blog}/budgets`,
    });
    await client.submitSpam({ ...visitor, content: "cheap pills here" });
    await client.submitHam({ ...visitor, content: "a fair point, thanks" });
    answers.submitted = true;
  }
  process.stdout.write(JSON.stringify(answers) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ error: String(error.message || error) }) + "\n");
  process.exitCode = 1;
});
