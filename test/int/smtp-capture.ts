import { SMTPServer } from 'smtp-server';

// A real SMTP server for the email tests: it accepts every message (or refuses the recipients `refuse` names,
// as a mailbox that does not exist) and keeps each one's recipients and raw text.
export type CapturedMail = { to: string[]; raw: string };

/** Listening on 127.0.0.1 (its port: `server.address()`); stop it with `server.close`. */
export async function smtpCapture(mails: CapturedMail[], opts: { refuse?: (address: string) => boolean } = {}): Promise<SMTPServer> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onRcptTo(address, _session, done) {
      done(opts.refuse?.(address.address) ? Object.assign(new Error('550 no such mailbox'), { responseCode: 550 }) : undefined);
    },
    onData(stream, session, done) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString()));
      stream.on('end', () => { mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw }); done(); });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return server;
}

/** A quoted-printable body as text (soft line breaks joined, =XX decoded). */
export const unqp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
