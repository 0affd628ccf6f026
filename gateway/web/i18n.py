"""UI texts in Vietnamese and English, and VND / number formatting per language."""

from __future__ import annotations

LANGUAGES = ("vi", "en")
LANG_COOKIE = "risgate_lang"

TEXTS: dict[str, tuple[str, str]] = {
    # key: (vi, en)
    "app": ("Cổng RIS-PACS", "RIS-PACS gateway"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "user": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong user name or password"),
    "dashboard": ("Tổng quan", "Dashboard"),
    "orders": ("Chỉ định", "Orders"),
    "studies": ("Ca chụp", "Studies"),
    "unmatched": ("Ca chưa khớp", "Unmatched studies"),
    "queue": ("Hàng đợi", "Queue"),
    "hl7": ("Nhật ký HL7", "HL7 log"),
    "norms": ("Định mức", "Norms"),
    "billing": ("Báo cáo chi phí", "Billing report"),
    "audit": ("Nhật ký truy cập", "Audit log"),
    "users": ("Người dùng", "Users"),
    "today_by_state": ("Ca chụp hôm nay theo trạng thái", "Today's studies by state"),
    "queue_depth": ("Độ sâu hàng đợi", "Queue depth"),
    "dead_jobs": ("Việc lỗi (DEAD)", "Dead jobs"),
    "errors": ("Lỗi", "Errors"),
    "throughput": ("Ảnh nhận theo giờ (24 giờ)", "Instances received per hour (24 h)"),
    "retry": ("Thử lại", "Retry"),
    "retry_all": ("Thử lại tất cả", "Retry all"),
    "retry_study": ("Gửi lại các ảnh lỗi của ca", "Retry the study's dead instances"),
    "study": ("Ca chụp", "Study"),
    "instance": ("Ảnh", "Instance"),
    "patient": ("Bệnh nhân", "Patient"),
    "patient_id": ("Mã BN", "Patient ID"),
    "accession": ("Số phiếu", "Accession"),
    "date": ("Ngày", "Date"),
    "modality": ("Máy/loại", "Modality"),
    "state": ("Trạng thái", "State"),
    "pipeline": ("Quy trình", "Pipeline"),
    "received": ("Đã nhận", "received"),
    "matched": ("Đã khớp", "matched"),
    "forwarded": ("Đã chuyển", "forwarded"),
    "verified": ("Đã xác minh", "verified"),
    "reported": ("Đã báo", "reported"),
    "costed": ("Đã tính phí", "costed"),
    "viewer": ("Xem ảnh", "Viewer"),
    "billing_inputs": ("Thanh toán", "Billing"),
    "delivery": ("Trả kết quả", "Result delivery"),
    "delivery_film": ("Có in phim", "Film printed"),
    "delivery_filmless": ("Không in phim (PACS)", "No film printed (PACS)"),
    "reason": ("Lý do", "Reason"),
    "save": ("Lưu", "Save"),
    "preview": ("Ảnh xem trước", "Preview"),
    "no_preview": ("Không có ảnh xem trước", "No preview"),
    "search_order": ("Tìm chỉ định", "Search order"),
    "search": ("Tìm", "Search"),
    "link": ("Gắn", "Link"),
    "linked": ("Đã gắn", "Linked"),
    "kind": ("Loại", "Kind"),
    "attempts": ("Lần thử", "Attempts"),
    "last_error": ("Lỗi gần nhất", "Last error"),
    "type": ("Loại", "Type"),
    "control_id": ("Mã điều khiển", "Control ID"),
    "ack": ("ACK", "ACK"),
    "status": ("Trạng thái", "Status"),
    "import": ("Nhập", "Import"),
    "import_file": ("Tệp định mức (.xlsx, .zip, .csv)", "Norm file (.xlsx, .zip, .csv)"),
    "service": ("Dịch vụ", "Service"),
    "price_bh": ("Giá BHYT", "Insurance price"),
    "price_bv": ("Giá BV", "Hospital price"),
    "illustrative": ("MINH HỌA — không phải số liệu chính thức", "ILLUSTRATIVE — not official"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "department": ("Khoa", "Department"),
    "apply": ("Lọc", "Apply"),
    "download": ("Tải về", "Download"),
    "full_cost": ("Chi phí đầy đủ", "Full cost"),
    "total": ("Tổng", "Total"),
    "by_modality_day": ("Chi phí theo ngày và loại máy", "Cost by day and modality"),
    "no_data": ("Không có dữ liệu", "No data"),
    "time": ("Thời gian", "Time"),
    "action": ("Hành động", "Action"),
    "object": ("Đối tượng", "Object"),
    "source": ("Nguồn", "Source"),
    "export_csv": ("Xuất CSV", "Export CSV"),
    "role": ("Vai trò", "Role"),
    "disabled": ("Đã khóa", "Disabled"),
    "create": ("Tạo", "Create"),
    "disable": ("Khóa", "Disable"),
    "language": ("Ngôn ngữ", "Language"),
    "series": ("Loạt ảnh", "Series"),
    "instances": ("Số ảnh", "Instances"),
    "procedure": ("Thủ thuật", "Procedure"),
    "scheduled": ("Lịch", "Scheduled"),
    "masked": ("(ẩn)", "(masked)"),
    "illustrative_short": ("MINH HỌA", "ILLUSTRATIVE"),
    "not_costed": ("Ca chưa tính được chi phí", "Studies not costed"),
    "all_costed": ("Mọi ca đã được tính chi phí", "Every study is costed"),
    "why": ("Lý do", "Why"),
    "fix": ("Cách xử lý", "Fix"),
    "kind_UNMAPPED_SERVICE": ("Chưa ánh xạ dịch vụ", "Service not mapped"),
    "kind_NO_CATALOGUE": ("Chưa có danh mục định mức", "No norm catalogue"),
    "kind_COSTING_ERROR": ("Lỗi tính chi phí", "Costing error"),
    "fix_link_order": ("Gắn với chỉ định", "Link the order"),
    "fix_map_code": ("Ánh xạ mã thủ thuật sang mã dịch vụ", "Map the procedure code to a service"),
    "fix_import_catalogue": ("Nhập danh mục định mức", "Import the norm catalogue"),
    "fix_catalogue_or_machine": (
        "Bổ sung giá/định mức/máy trong danh mục",
        "Add the price, norm or machine to the catalogue",
    ),
    "fix_recost": ("Tính lại", "Recost"),
    "totals_by_service": ("Tổng theo dịch vụ", "Totals by service"),
    "prev": ("Trước", "Previous"),
    "next": ("Sau", "Next"),
}


def pick(lang: str | None, default: str = "vi") -> str:
    return lang if lang in LANGUAGES else default


def t(lang: str, key: str) -> str:
    pair = TEXTS.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "vi" else pair[1]


def group_digits(value: int, sep: str) -> str:
    sign = "-" if value < 0 else ""
    return sign + f"{abs(value):,}".replace(",", sep)


def vnd(lang: str, value: int | None) -> str:
    """1.341.500 ₫ in Vietnamese, 1,341,500 VND in English."""
    if value is None:
        return ""
    if lang == "vi":
        return group_digits(int(value), ".") + " ₫"
    return group_digits(int(value), ",") + " VND"


def number(lang: str, value: int | float) -> str:
    return group_digits(int(value), "." if lang == "vi" else ",")
