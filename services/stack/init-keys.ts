// The deployment's first start (`make up`, `make test`): the signing keyring and the attestation secret,
// created once in the keys directory every process reads. Idempotent: existing keys are kept as they are.
import { loadConfig } from '../config.ts';
import { loadAttestationSecret } from '../decisions/attestation.ts';
import { loadOrCreateKeyring } from '../receipts/keyring.ts';

const config = loadConfig();
const keyring = await loadOrCreateKeyring(config.keysDir);
loadAttestationSecret(config.keysDir, config.COUNTERSIGN_ATTESTATION_SECRET);
process.stdout.write(`${JSON.stringify({ keys_dir: config.keysDir, active_key_id: keyring.activeKeyId })}\n`);
