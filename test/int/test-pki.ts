import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** A certificate and its key, as PEM files. */
export type CertFiles = { cert: string; key: string };

/**
 * Throwaway certificate authorities and certificates for the TLS tests, made with openssl into a temporary
 * directory (never committed): `ca` signs the servers and the good client; `otherCa` signs a rogue client and
 * is the wrong CA to trust a server with.
 */
export type TestPki = { dir: string; ca: CertFiles; otherCa: CertFiles; issue: (name: string, by: CertFiles, san: string) => CertFiles };

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function selfSigned(dir: string, name: string): CertFiles {
  const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', files.key, '-out', files.cert, '-days', '2', '-subj', `/CN=${name}`]);
  return files;
}

export function makeTestPki(dir: string): TestPki {
  const issue = (name: string, by: CertFiles, san: string): CertFiles => {
    const files = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
    const csr = path.join(dir, `${name}.csr`);
    const ext = path.join(dir, `${name}.ext`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', files.key, '-out', csr, '-subj', `/CN=${name}`]);
    writeFileSync(ext, `subjectAltName=${san}\n`);
    openssl(['x509', '-req', '-in', csr, '-CA', by.cert, '-CAkey', by.key, '-CAcreateserial', '-out', files.cert, '-days', '2', '-extfile', ext]);
    return files;
  };
  return { dir, ca: selfSigned(dir, 'test-ca'), otherCa: selfSigned(dir, 'other-ca'), issue };
}
