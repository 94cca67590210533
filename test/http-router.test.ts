// Router: the pool of a request by its host, as `routes` say.
import test from 'ava';
import { Router, normalHost } from '../src/http/router';
import type { RoutesConfig } from '../src/pools';

const ROUTES: RoutesConfig = {
  exact: [['example.com', 'web'], ['admin.example.com', 'admin'], ['10.0.0.1', 'ip'], ['::1', 'ip6']],
  // Given shortest first on purpose: the router must still take the longest match.
  wildcard: [['.example.com', 'web-sub'], ['.api.example.com', 'api'], ['.eu.api.example.com', 'api-eu']],
  default: 'fallback',
};
const router = new Router(ROUTES);

test('an exact host, before any wildcard', (t) => {
  t.is(router.poolFor('example.com'), 'web');
  t.is(router.poolFor('admin.example.com'), 'admin'); // also matches *.example.com
});

test('a wildcard matches any depth of subdomain, not the name itself; the longest suffix wins', (t) => {
  t.is(router.poolFor('a.example.com'), 'web-sub');
  t.is(router.poolFor('a.b.example.com'), 'web-sub');
  t.is(router.poolFor('v1.api.example.com'), 'api');
  t.is(router.poolFor('x.y.api.example.com'), 'api');
  t.is(router.poolFor('node.eu.api.example.com'), 'api-eu');
  t.is(router.poolFor('api.example.com'), 'web-sub'); // *.api.example.com does not match api.example.com
  t.is(router.poolFor('eu.api.example.com'), 'api');
  t.is(router.poolFor('badexample.com'), 'fallback'); // a suffix matches at a dot only
  t.is(router.poolFor('.example.com'), 'fallback'); // an empty label is no subdomain
});

test('case, port and a trailing dot do not matter', (t) => {
  t.is(router.poolFor('EXAMPLE.com'), 'web');
  t.is(router.poolFor('example.com:8080'), 'web');
  t.is(router.poolFor('Example.Com.:443'), 'web');
  t.is(router.poolFor('example.com.'), 'web');
  t.is(router.poolFor('V1.API.Example.COM'), 'api');
  t.is(router.poolFor('10.0.0.1:80'), 'ip');
});

test('IPv6 literals in brackets, with or without a port', (t) => {
  t.is(router.poolFor('[::1]'), 'ip6');
  t.is(router.poolFor('[::1]:8080'), 'ip6');
  t.is(router.poolFor('[::2]:8080'), 'fallback');
});

test('an unknown or empty host goes to the default; without one, null (404)', (t) => {
  t.is(router.poolFor('other.test'), 'fallback');
  t.is(router.poolFor(''), 'fallback');
  const strict = new Router({ ...ROUTES, default: null });
  t.is(strict.poolFor('other.test'), null);
  t.is(strict.poolFor(''), null);
  t.is(strict.poolFor('example.com'), 'web');
  t.is(new Router({ exact: [], wildcard: [], default: null }).poolFor('example.com'), null);
});

test('normalHost returns the very string when there is nothing to strip or lower', (t) => {
  const host = 'plain.example.com';
  t.is(normalHost(host), host);
  t.is(normalHost('Plain.Example.com:80'), 'plain.example.com');
  t.is(normalHost('[2001:DB8::1]:80'), '2001:db8::1');
});
