import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidRequest, MissingCredentials, type SidecarError } from '../../src/errors.ts';
import { MAX_TOKEN_BYTES, extractBearerToken, rejectTokenInForm, rejectTokenInQuery } from '../../src/request/credential.ts';

function failure(fn: () => unknown): SidecarError {
  try {
    fn();
  } catch (error) {
    return error as SidecarError;
  }
  assert.fail('expected a throw');
}

const accepted: [string, string][] = [
  ['Bearer abc.DEF-123_~+/', 'abc.DEF-123_~+/'],
  ['bearer abc', 'abc'],
  ['BEARER abc==', 'abc=='],
  ['Bearer   abc', 'abc'],
];
for (const [header, token] of accepted) {
  test(`accepts ${JSON.stringify(header)}`, () => assert.equal(extractBearerToken([header]), token));
}

const refused: [string, string[] | undefined, typeof MissingCredentials | typeof InvalidRequest, string][] = [
  ['no header', undefined, MissingCredentials, 'no_credentials'],
  ['an empty list', [], MissingCredentials, 'no_credentials'],
  ['an empty header', [''], MissingCredentials, 'no_credentials'],
  ['Basic credentials', ['Basic dXNlcjpwYXNz'], MissingCredentials, 'other_scheme'],
  ['DPoP scheme', ['DPoP abc'], MissingCredentials, 'other_scheme'],
  ['Bearer without a token', ['Bearer'], InvalidRequest, 'malformed_token'],
  ['a token with a space inside', ['Bearer abc def'], InvalidRequest, 'malformed_token'],
  ['a token with a comma', ['Bearer abc,Bearer def'], InvalidRequest, 'malformed_token'],
  ['padding in the middle', ['Bearer ab=c'], InvalidRequest, 'malformed_token'],
  ['a quote', ['Bearer "abc"'], InvalidRequest, 'malformed_token'],
  ['non-ASCII', ['Bearer abcé'], InvalidRequest, 'malformed_token'],
  ['two Authorization headers', ['Bearer abc', 'Bearer def'], InvalidRequest, 'multiple_authorization_headers'],
  ['a token over 4096 bytes', [`Bearer ${'a'.repeat(MAX_TOKEN_BYTES + 1)}`], InvalidRequest, 'token_too_long'],
];
for (const [name, headers, type, reason] of refused) {
  test(`refuses ${name}`, () => {
    const error = failure(() => extractBearerToken(headers));
    assert.ok(error instanceof type, `${error.constructor.name} is not ${type.name}`);
    assert.equal(error.reason, reason);
  });
}

test('a token of exactly 4096 bytes is accepted', () => {
  assert.equal(extractBearerToken([`Bearer ${'a'.repeat(MAX_TOKEN_BYTES)}`]).length, MAX_TOKEN_BYTES);
});

test('a token in the query string is refused, however it is spelt', () => {
  for (const url of ['/a?access_token=x', '/a?b=1&access_token=', '/a?%61ccess_token=x', '/a?access_token']) {
    assert.equal(failure(() => rejectTokenInQuery(url)).reason, 'token_in_query', url);
  }
  for (const url of ['/a', '/a?', '/a?token=x', '/a?x=access_token', '/access_token']) {
    assert.doesNotThrow(() => rejectTokenInQuery(url), url);
  }
});

test('a token in a form body is refused', () => {
  assert.equal(failure(() => rejectTokenInForm(Buffer.from('a=1&access_token=x'))).reason, 'token_in_body');
  assert.doesNotThrow(() => rejectTokenInForm(Buffer.from('amount=10&note=access_token')));
});
