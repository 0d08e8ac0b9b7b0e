// The spec reporter, plus one closing line `N passed, N failed, N skipped` that CI reads.
'use strict';
const Mocha = require('mocha');

class SpecWithTotals extends Mocha.reporters.Spec {
  epilogue() {
    super.epilogue();
    const s = this.stats;
    process.stdout.write(`${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
  }
}
module.exports = SpecWithTotals;
