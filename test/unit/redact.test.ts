import * as assert from "assert";
import { redact, redactionList } from "../../lib/redact";

describe("unit: redact (secret values out of step output)", () => {
  it("hides every value wherever it appears, a URL's password too, longest first", () => {
    const list = redactionList(["postgres://app:s3cr%40t-pw@db:5432/x", "tok3n-abc", "tok3n-abcdef", undefined, "", 42]);
    assert.deepStrictEqual(list, ["postgres://app:s3cr%40t-pw@db:5432/x", "tok3n-abcdef", "s3cr%40t-pw", "s3cr@t-pw", "tok3n-abc"]);
    assert.strictEqual(
      redact("url=postgres://app:s3cr%40t-pw@db:5432/x pw s3cr@t-pw, tok3n-abcdef and tok3n-abc\n", list),
      "url=[secret] pw [secret], [secret] and [secret]\n",
    );
  });

  it("keeps the prefix of a protocol line (the steps' result line) when a secret is a word of it", () => {
    const list = redactionList(["nostromo"]);
    assert.strictEqual(
      redact('path /opt/nostromo\nnostromo-result {"a":"nostromo"}', list, "nostromo-result "),
      'path /opt/[secret]\nnostromo-result {"a":"[secret]"}',
    );
  });

  it("leaves short values (they would hide the output, not the secret) and text without secrets alone", () => {
    assert.deepStrictEqual(redactionList(["abc", "x"]), []);
    assert.strictEqual(redact("abc x", redactionList(["abc", "x"])), "abc x");
    assert.strictEqual(redact("nothing here", undefined), "nothing here");
  });
});
