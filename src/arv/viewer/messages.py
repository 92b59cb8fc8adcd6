"""The words of the AR page in each language a company may choose (English and Russian)."""

from __future__ import annotations

LANGUAGES = ("en", "ru")
DEFAULT_LANGUAGE = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "AR photo",
        "loading": "Starting the camera…",
        "camera_prompt": "Allow the camera when asked: it is used only to find the photo.",
        "scanning": "Point the camera at the printed photo",
        "tap_for_sound": "Tap for sound",
        "preparing": "The video is still being prepared. It starts here by itself as soon as it is ready.",
        "preparing_progress": "Prepared: {percent}%",
        "expired_title": "This content has expired",
        "expired_text": "The video for this photo is no longer available. Ask the studio that printed it.",
        "unknown_title": "Nothing here",
        "unknown_text": "This link does not lead to any AR content. Check the QR code or the address.",
        "not_ready_title": "Not ready yet",
        "not_ready_text": "This photo is still being prepared. Try again in a few minutes.",
        "deleted_title": "No longer available",
        "deleted_text": "The studio that made this AR content has deleted it, with its video.",
        "camera_title": "The camera is not available",
        "camera_text": (
            "The page needs the camera to find the photo. Allow camera access for this site in your "
            "browser's settings, then reload the page."
        ),
        "unsupported_title": "This browser cannot show AR",
        "unsupported_text": "Open the link in an up-to-date Chrome, Safari or Firefox on your phone.",
        "failed_title": "Something went wrong",
        "failed_text": "The AR view could not start. Check your connection and reload the page.",
        "reload": "Reload",
    },
    "ru": {
        "title": "AR-фото",
        "loading": "Включаем камеру…",
        "camera_prompt": "Разрешите доступ к камере: она нужна только чтобы найти фотографию.",
        "scanning": "Наведите камеру на напечатанную фотографию",
        "tap_for_sound": "Нажмите, чтобы включить звук",
        "preparing": "Видео ещё готовится. Оно начнётся здесь само, как только будет готово.",
        "preparing_progress": "Готово: {percent} %",
        "expired_title": "Срок действия истёк",
        "expired_text": (
            "Видео к этой фотографии больше недоступно. Обратитесь в студию, которая её напечатала."
        ),
        "unknown_title": "Здесь ничего нет",
        "unknown_text": "По этой ссылке нет AR-контента. Проверьте QR-код или адрес.",
        "not_ready_title": "Ещё не готово",
        "not_ready_text": "Фотография ещё готовится. Попробуйте через несколько минут.",
        "deleted_title": "Больше недоступно",
        "deleted_text": "Студия, создавшая этот AR-контент, удалила его вместе с видео.",
        "camera_title": "Камера недоступна",
        "camera_text": (
            "Странице нужна камера, чтобы найти фотографию. Разрешите доступ к камере для этого сайта "
            "в настройках браузера и обновите страницу."
        ),
        "unsupported_title": "Этот браузер не поддерживает AR",
        "unsupported_text": "Откройте ссылку в свежей версии Chrome, Safari или Firefox на телефоне.",
        "failed_title": "Что-то пошло не так",
        "failed_text": "Не удалось запустить AR. Проверьте подключение к интернету и обновите страницу.",
        "reload": "Обновить",
    },
}


def pick_language(company_language: str | None, accept_language: str | None) -> str:
    """The company's language when supported, else the reader's first supported one, else English."""
    if company_language in LANGUAGES:
        return company_language  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE
