/**
 * Deploy notifications as Slack-compatible incoming-webhook payloads (`{ text, blocks }`; Mattermost
 * and Rocket.Chat read `text`), and the POST that sends one. No @pulumi runtime import.
 */

export type NotifyKind = "start" | "success" | "failure" | "rollback";

export interface NotifyEvent {
  kind: NotifyKind;
  stack: string;
  /** app → version or ref being deployed (or rolled back to). */
  versions: Record<string, string>;
  /** app → version or ref that served before. */
  previous?: Record<string, string>;
  durationSeconds?: number;
  /** app → changelog lines (`<short sha> <subject>`). */
  changelog?: Record<string, string[]>;
  /** The bake's verdict and figures, one line (lib/scripts/bake.ts bakeSummary). */
  bake?: string;
  /** Stack update number: the new one, or for a rollback the one rolled back to. */
  update?: number;
  rollbackTo?: number;
  /** What failed (failure); first line is shown. */
  error?: string;
  url?: string;
  /** Who ran it (user@host). */
  by?: string;
}

export interface SlackBlock {
  type: string;
  text?: { type: "mrkdwn" | "plain_text"; text: string; emoji?: boolean };
  fields?: { type: "mrkdwn"; text: string }[];
  elements?: { type: "mrkdwn"; text: string }[];
}

export interface WebhookPayload {
  text: string;
  blocks?: SlackBlock[];
}

/** Slack's escaping for text: `&`, `<`, `>` (everything else is literal). */
export function slackEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function versionsText(v: Record<string, string> | undefined): string {
  const names = Object.keys(v ?? {}).sort();
  return names.length ? names.map((n) => `${n} ${v![n]}`).join(", ") : "-";
}

export function durationText(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.round(seconds);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

const HEADLINE: Record<NotifyKind, string> = {
  start: "Deploy started",
  success: "Deploy succeeded",
  failure: "Deploy FAILED",
  rollback: "Rolled back",
};

/** Most lines of changelog shown per app (Slack caps a section at 3000 characters). */
export const CHANGELOG_LINES = 15;

/** The webhook payload of one deploy event. */
export function notificationPayload(e: NotifyEvent): WebhookPayload {
  const dur = durationText(e.durationSeconds);
  const upd =
    e.kind === "rollback" && e.rollbackTo !== undefined
      ? ` to update ${e.rollbackTo}`
      : e.update !== undefined
        ? ` (update ${e.update})`
        : "";
  const head = `${HEADLINE[e.kind]}${upd}: ${e.stack}`;
  const parts = [`${head}: ${versionsText(e.versions)}`];
  if (e.previous && Object.keys(e.previous).length) parts.push(`(was ${versionsText(e.previous)})`);
  if (dur) parts.push(`in ${dur}`);
  const firstError = e.error?.split("\n").find((l) => l.trim()) ?? "";
  if (e.kind === "failure" && firstError) parts.push(`- ${firstError.slice(0, 300)}`);
  const text = slackEscape(parts.join(" "));

  const fields = [
    { type: "mrkdwn" as const, text: `*Stack*\n${slackEscape(e.stack)}` },
    { type: "mrkdwn" as const, text: `*Versions*\n${slackEscape(versionsText(e.versions))}` },
  ];
  if (e.previous && Object.keys(e.previous).length)
    fields.push({ type: "mrkdwn", text: `*Previous*\n${slackEscape(versionsText(e.previous))}` });
  if (dur) fields.push({ type: "mrkdwn", text: `*Duration*\n${dur}` });
  if (e.bake) fields.push({ type: "mrkdwn", text: `*Bake*\n${slackEscape(e.bake)}` });
  const blocks: SlackBlock[] = [
    { type: "header", text: { type: "plain_text", text: head.slice(0, 150), emoji: false } },
    { type: "section", fields },
  ];
  if (e.kind === "failure" && e.error) {
    blocks.push({ type: "section", text: { type: "mrkdwn", text: "```" + slackEscape(e.error.slice(0, 2500)) + "```" } });
  }
  const changes = Object.keys(e.changelog ?? {})
    .sort()
    .filter((app) => e.changelog![app].length > 0)
    .map((app) => {
      const lines = e.changelog![app];
      const shown = lines.slice(0, CHANGELOG_LINES).map((l) => `• ${slackEscape(l)}`);
      if (lines.length > CHANGELOG_LINES) shown.push(`… and ${lines.length - CHANGELOG_LINES} more`);
      return `*${slackEscape(app)}*\n${shown.join("\n")}`;
    });
  if (changes.length) blocks.push({ type: "section", text: { type: "mrkdwn", text: `*Changelog*\n${changes.join("\n")}`.slice(0, 3000) } });
  const context = [e.by ? `by ${slackEscape(e.by)}` : "", e.url ? `<${e.url}|${slackEscape(e.url)}>` : ""].filter(Boolean).join(" · ");
  if (context) blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: context }] });
  return { text, blocks };
}

export class WebhookError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "WebhookError";
  }
}

/**
 * POSTs the payload as JSON to the incoming-webhook URL; throws WebhookError on a non-2xx answer
 * or after `timeoutMs`. The URL carries the webhook's secret: it is never part of an error.
 */
export async function postNotification(webhookUrl: string, payload: WebhookPayload, timeoutMs = 10_000): Promise<void> {
  let host: string;
  try {
    host = new URL(webhookUrl).host;
  } catch {
    throw new WebhookError("notifyWebhookUrl is not a valid URL");
  }
  let res: Response;
  try {
    res = await fetch(webhookUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new WebhookError(`notification to ${host} failed: ${(err as Error).message}`);
  }
  const body = await res.text().catch(() => "");
  if (!res.ok) throw new WebhookError(`notification to ${host} failed: HTTP ${res.status} ${body.slice(0, 200)}`, res.status);
}
