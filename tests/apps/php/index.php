<?php
// Plain PHP test app behind idlegate: native sessions (PHPSESSID, strict
// mode, files in $APP_STATE_DIR/sessions), php -S router script.
declare(strict_types=1);

require __DIR__ . '/idle_user_header.php';
require __DIR__ . '/webhook.php';
require __DIR__ . '/diy_last_activity.php';

$STATE = getenv('APP_STATE_DIR');
$USERS = require __DIR__ . '/users.php';

function json_out($value, int $status = 200): void
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($value);
}

function redirect(string $to): void
{
    http_response_code(302);
    header("Location: $to");
}

function page(string $title, string $body, int $status = 200): void
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    echo '<!doctype html><html><head><meta charset="utf-8"><title>' . htmlspecialchars($title) . '</title></head><body>' . $body . '</body></html>';
}

function login_form(string $error = '', int $status = 200): void
{
    $err = $error === '' ? '' : '<p class="error">' . htmlspecialchars($error) . '</p>';
    page('Sign in', "<h1>Sign in</h1>$err
<form method=\"post\" action=\"/login\">
<label>Username <input name=\"username\" autocomplete=\"username\"></label>
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>
<button type=\"submit\">Sign in</button>
</form>", $status);
}

// Sessions are started lazily: only when the visitor already has a cookie
// (or at login), so anonymous visitors get no PHPSESSID.
if (isset($_COOKIE[session_name()])) {
    session_start();
}
$userId = $_SESSION['user_id'] ?? null;

$method = $_SERVER['REQUEST_METHOD'];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

switch ("$method $path") {
    case 'GET /login':
        login_form();
        break;

    case 'POST /login':
        $name = (string) ($_POST['username'] ?? '');
        $found = null;
        foreach ($USERS as $id => $u) {
            if ($u['username'] === $name && password_verify((string) ($_POST['password'] ?? ''), $u['password_hash'])) $found = (string) $id;
        }
        if ($found === null) { login_form('Invalid username or password.', 401); break; }
        if (session_status() !== PHP_SESSION_ACTIVE) session_start();
        session_regenerate_id(true); // new ID, old session file deleted
        $_SESSION['user_id'] = $found;
        redirect('/');
        break;

    case 'POST /logout':
        if (session_status() === PHP_SESSION_ACTIVE) {
            $_SESSION = [];
            $p = session_get_cookie_params();
            setcookie(session_name(), '', ['expires' => time() - 42000, 'path' => $p['path'], 'domain' => $p['domain'],
                'secure' => $p['secure'], 'httponly' => $p['httponly'], 'samesite' => $p['samesite']]);
            session_destroy();
        }
        redirect('/login');
        break;

    case 'GET /':
        if ($userId === null) { redirect('/login'); break; }
        page('Home', '<h1>Hello ' . htmlspecialchars($USERS[$userId]['username']) . '</h1>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
<script>window.appScriptRan = true;</script>');
        break;

    case 'GET /poll':
        json_out(['user' => $userId]);
        break;

    case 'GET /api/me':
        if ($userId === null) json_out(['error' => 'unauthenticated', 'user' => null], 401);
        else json_out(['user' => $userId, 'username' => $USERS[$userId]['username']]);
        break;

    case 'POST /idlegate/webhook':
        idlegate_webhook($STATE);
        break;

    case 'GET /idlegate/events':
        json_out(read_events($STATE));
        break;

    case 'GET /idlegate/users':
        $out = with_state($STATE, fn (array &$presence) => $presence);
        $result = [];
        foreach ($USERS as $id => $u) {
            $result[(string) $id] = ['id' => (string) $id, 'username' => $u['username']] + $out[$id];
        }
        json_out($result);
        break;

    case 'GET /diy/activity':
        $rows = [];
        if (is_file("$STATE/diy.sqlite")) {
            $db = new PDO("sqlite:$STATE/diy.sqlite");
            foreach ($db->query('SELECT user_id, last_activity FROM session_activity ORDER BY last_activity DESC') as $r) {
                $rows[] = ['user' => $r['user_id'], 'last_activity' => gmdate('Y-m-d\TH:i:s\Z', (int) $r['last_activity'])];
            }
        }
        json_out($rows);
        break;

    default:
        json_out(['error' => 'not found'], 404);
}

if (getenv('DIY_LAST_ACTIVITY') === '1' && session_status() === PHP_SESSION_ACTIVE) {
    diy_record_activity($STATE);
}
