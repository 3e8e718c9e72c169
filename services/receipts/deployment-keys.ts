import { readAttestationSecret } from '../decisions/attestation.ts';
import { loadKeyring } from './keyring.ts';

/**
 * The signing material of a process that signs (API: activations, exports, run starts; worker: receipts): the
 * deployment's keyring with its active private key, and the attestation secret. Both are read, never created:
 * a process that made its own key would sign what `GET /v1/keys` cannot verify. Only the deployment's first
 * start creates them (services/stack/init-keys.ts). Throws one line naming what is missing.
 */
export async function requireSigningKeys(keysDir: string, configuredSecret?: string): Promise<void> {
  try {
    await loadKeyring(keysDir);
  } catch (err) {
    throw new Error(`no usable signing keyring in ${keysDir} (${oneLine(err)}); the deployment's first start creates it (make up, or services/stack/init-keys.ts), and every process that signs reads the same one`);
  }
  try {
    readAttestationSecret(keysDir, configuredSecret);
  } catch (err) {
    throw new Error(oneLine(err));
  }
}

const oneLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
