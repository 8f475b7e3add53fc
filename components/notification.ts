import * as pulumi from "@pulumi/pulumi";
import { WebhookPayload } from "../lib/notify";
import { quote } from "../lib/shell";
import { COMPONENT_TYPE, STEP, stepName } from "../lib/steps";
import { Command } from "./command";

export interface NotificationArgs {
  /** Incoming-webhook URL (a Pulumi secret): reaches the sender on stdin only. */
  readonly webhookUrl: pulumi.Input<string>;
  readonly payload: pulumi.Input<WebhookPayload>;
  /** Any change sends again (the deploy's SHAs). */
  readonly triggers: pulumi.Input<unknown[]>;
  /** Which message this is (start or success of a deploy). */
  readonly kind: typeof STEP.notifyStart | typeof STEP.notifySuccess;
}

/** Node program run where `pulumi` runs: reads {url, payload} on stdin and POSTs the payload. */
const SEND = `
let input = "";
process.stdin.on("data", (d) => (input += d)).on("end", async () => {
  const { url, payload } = JSON.parse(input);
  try {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload), signal: AbortSignal.timeout(10000) });
    if (!res.ok) throw new Error("the webhook answered HTTP " + res.status);
    console.log("notified: " + payload.text.split("\\n")[0]);
    console.log("nostromo-result " + JSON.stringify({ sent: "yes" }));
  } catch (err) {
    console.error("notification not sent (" + (err.cause?.code ?? err.message) + "); the deploy goes on");
    console.log("nostromo-result " + JSON.stringify({ sent: "no" }));
  }
});
`;

/**
 * A Slack-compatible webhook message sent from the machine running `pulumi` (start and success
 * of a deploy). A webhook that cannot be reached is reported, never a reason to fail a deploy.
 */
export class Notification extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: NotificationArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.notification, name, {}, opts);
    const stdin = pulumi.secret(pulumi.all([args.webhookUrl, args.payload]).apply(([url, payload]) => JSON.stringify({ url, payload })));
    this.step = new Command(
      stepName(name, args.kind),
      { step: args.kind, create: `node -e ${quote(SEND)}`, stdin, triggers: args.triggers },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({});
  }
}
