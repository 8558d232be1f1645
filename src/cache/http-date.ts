// HTTP-date parsing (RFC 9110 §5.6.7): the three formats senders use, nothing Date.parse would guess at.

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = /^[a-z]{3}, (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt$/i;
/** `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete) */
const RFC_850 = /^[a-z]{6,9}, (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt$/i;
/** `Sun Nov  6 08:49:37 1994` (obsolete, ANSI C asctime) */
const ASCTIME = /^[a-z]{3} ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/**
 * Parses an HTTP-date into epoch milliseconds; undefined for anything else (`0`, `-1`, an empty or
 * malformed value, an impossible day such as 31 Feb). Callers decide what invalid means: for `Expires` it
 * is a time in the past (RFC 9111 §5.3). A two-digit RFC 850 year more than 50 years ahead is taken as
 * the most recent past year with those digits (RFC 9110 §5.6.7).
 */
export function parseHttpDate(value: string | string[] | undefined): number | undefined {
  if (value === undefined || Array.isArray(value)) return undefined;
  const text = value.trim();
  let match = IMF_FIXDATE.exec(text);
  if (match !== null) return utc(+match[3]!, match[2]!, +match[1]!, match[4]!, match[5]!, match[6]!);
  match = RFC_850.exec(text);
  if (match !== null) {
    const thisYear = new Date().getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(match[3]);
    if (year > thisYear + 50) year -= 100;
    return utc(year, match[2]!, +match[1]!, match[4]!, match[5]!, match[6]!);
  }
  match = ASCTIME.exec(text);
  if (match !== null) return utc(+match[6]!, match[1]!, +match[2]!.trim(), match[3]!, match[4]!, match[5]!);
  return undefined;
}

function utc(
  year: number,
  monthName: string,
  day: number,
  h: string,
  m: string,
  s: string,
): number | undefined {
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const [hours, minutes, seconds] = [Number(h), Number(m), Number(s)];
  if (month === -1 || hours > 23 || minutes > 59 || seconds > 60) return undefined;
  const time = Date.UTC(year, month, day, hours, minutes, Math.min(seconds, 59));
  // Date.UTC rolls 31 Feb over into March: such a date is not a date.
  return new Date(time).getUTCDate() === day ? time : undefined;
}
