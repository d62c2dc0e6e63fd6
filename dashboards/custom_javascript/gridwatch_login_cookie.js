// Gridwatch panel: keeps AppDaemon 4.5.13's live connection working behind its
// password (http: password:). After the login form, AppDaemon sets the cookie
// "adcreds" to a bcrypt hash of the password; its stream.js drops the first and
// last character of that cookie, expecting the quotes aiohttp puts around a
// value with a "/" in it. About half of all hashes have none, are set without
// quotes, and the panel then shows no values at all. Quoting the cookie here,
// before the panel connects, makes every login work (the server reads the
// quoted value as the same hash).
(function () {
  var found = document.cookie.match(/(?:^|;\s*)adcreds=([^;]*)/);
  if (found && found[1].charAt(0) !== '"') {
    document.cookie = 'adcreds="' + found[1] + '"; path=/; max-age=31536000';
  }
})();
