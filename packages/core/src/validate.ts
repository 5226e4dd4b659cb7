// `@deft/core/validate`: the argument checks the packages of this project share, so that every bad
// argument gets the same `InvalidArgumentError` shape (argument name, expected, actual).
export { assertFinite, assertInteger, describeValue } from './validate/assert.js';
