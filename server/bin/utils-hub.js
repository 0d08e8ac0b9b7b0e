#!/usr/bin/env node
// A committed shim so that npm can link the `utils-hub` bin before `tsc -b` has produced dist/.
import '../dist/cli.js';
