'use strict';
// The idlegate integration: tell the proxy who is signed in.
// Runs just before the response headers go out, so the login response
// (after req.session.regenerate) already carries the new user and the logout
// response (after req.session.destroy) carries none. idlegate reads the header
// and strips it, so the browser never sees it.
const onHeaders = require('on-headers');

module.exports = function idleUserHeader(req, res, next) {
  onHeaders(res, () => {
    if (req.session && req.session.userId) {
      res.setHeader('X-Idle-User', String(req.session.userId));
    }
  });
  next();
};
