// Compile every contracts/*.sol with the pinned npm solc (solc-js, offline: soljson.js ships in the
// package) into build/contracts/<Name>.json ({abi, bytecode, deployedBytecode, compiler, evmVersion}),
// the layout sim/chain/artifacts.py loads. Run by `make contracts` (part of `make bootstrap`).
//
// viaIR: the flash-loan callback's locals do not fit the legacy pipeline's stack (12 s to compile here).
// evmVersion is pinned to "prague": py-evm's default fork (sim/chain/pyevm.py) and below anvil's
// "latest"; solc 0.8.37 defaults to osaka, whose CLZ opcode py-evm does not have (EVM_SIM.md §4).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const EVM_VERSION = 'prague';
const root = path.resolve(__dirname, '..');
const srcDir = path.join(root, 'contracts');
const outDir = path.join(root, 'build', 'contracts');

const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    viaIR: true,
    metadata: { bytecodeHash: 'none' }, // the same bytes whatever the source paths: builds are reproducible
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
for (const e of out.errors || []) process.stderr.write(e.formattedMessage + '\n');
if (errors.length) process.exit(1);
fs.mkdirSync(outDir, { recursive: true });
for (const [file, contracts] of Object.entries(out.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces
    const artifact = {
      contractName: name, sourceName: `contracts/${file}`, compiler: `solc-js ${solc.version()}`,
      evmVersion: EVM_VERSION, abi: c.abi, bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 1) + '\n');
    process.stdout.write(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes (${artifact.compiler}, ${EVM_VERSION})\n`);
  }
}
