// Loaded with `node --require` before the unit tests: resolves `vscode` (which only exists
// inside VS Code) and `vscode-languageclient/node` to the small fakes beside this file.
'use strict';
const Module = require('module');
const path = require('path');

const fakes = {
	vscode: path.join(__dirname, 'vscode.js'),
	'vscode-languageclient/node': path.join(__dirname, 'languageclient.js'),
};

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
	if (Object.prototype.hasOwnProperty.call(fakes, request)) {
		return fakes[request];
	}
	return resolve.call(this, request, ...rest);
};
