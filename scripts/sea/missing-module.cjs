// Stands in for optional native add-ons (bufferutil, utf-8-validate) and
// supports-color: their users probe them with try/require and fall back.
// Throwing MODULE_NOT_FOUND keeps that fallback silent inside the executable.
const error = new Error('optional module not bundled');
error.code = 'MODULE_NOT_FOUND';
throw error;
