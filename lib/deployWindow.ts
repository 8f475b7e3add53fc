/**
 * Deploy windows (runbook: production deploys only in agreed hours). Pure: a window and an
 * instant in, a yes/no and a description out. Used by config validation and by the policy pack.
 */

export const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface DeployWindow {
  /** Days the window opens on, in its timezone. */
  days: Weekday[];
  /** `HH:MM`, inclusive. */
  start: string;
  /** `HH:MM` (up to `24:00`), exclusive. An end before the start closes the next day. */
  end: string;
  /** IANA time zone, e.g. `America/Santiago`. */
  timezone: string;
}

const HHMM = /^([01]\d|2[0-4]):([0-5]\d)$/;

/** Minutes since midnight of `HH:MM`, or undefined when it is not a time of day. */
export function minutesOf(hhmm: string): number | undefined {
  const m = HHMM.exec(hhmm);
  if (!m) return undefined;
  const minutes = Number(m[1]) * 60 + Number(m[2]);
  return minutes <= 24 * 60 ? minutes : undefined;
}

/** Whether the runtime knows this IANA time zone. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Weekday and minutes since midnight of `at` in `timezone`. */
export function localTime(at: Date, timezone: string): { day: Weekday; minutes: number; text: string } {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(at);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const day = get("weekday").toLowerCase().slice(0, 3) as Weekday;
  const hour = Number(get("hour"));
  const minute = Number(get("minute"));
  return { day, minutes: hour * 60 + minute, text: `${day} ${get("hour")}:${get("minute")} ${timezone}` };
}

/** Whether `at` falls inside the window. */
export function isWithinWindow(window: DeployWindow, at: Date): boolean {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  if (start === undefined || end === undefined) return false;
  const { day, minutes } = localTime(at, window.timezone);
  const opensOn = (d: Weekday) => window.days.includes(d);
  if (start < end) return opensOn(day) && minutes >= start && minutes < end;
  // Overnight window (22:00-02:00): the evening of a listed day, or the early hours after it.
  const previous = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7];
  return (opensOn(day) && minutes >= start) || (opensOn(previous) && minutes < end);
}

/** `mon,tue 09:00-17:00 America/Santiago` */
export function describeWindow(window: DeployWindow): string {
  return `${window.days.join(",")} ${window.start}-${window.end} ${window.timezone}`;
}
