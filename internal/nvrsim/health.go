package nvrsim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
)

// Storage is the document of GET /ISAPI/ContentMgmt/Storage.
type Storage struct {
	XMLName xml.Name `xml:"storage"`
	Version string   `xml:"version,attr"`
	XMLNS   string   `xml:"xmlns,attr"`
	HDDs    []HDD    `xml:"hddList>hdd"`
	NAS     []HDD    `xml:"nasList>nas"`
}

// HDDList is the document of GET /ISAPI/ContentMgmt/Storage/hdd.
type HDDList struct {
	XMLName xml.Name `xml:"hddList"`
	Version string   `xml:"version,attr"`
	XMLNS   string   `xml:"xmlns,attr"`
	HDDs    []HDD    `xml:"hdd"`
}

// HDD is one disk in a storage document.
type HDD struct {
	ID        int    `xml:"id"`
	HDDName   string `xml:"hddName"`
	HDDPath   string `xml:"hddPath"`
	HDDType   string `xml:"hddType"`
	Status    string `xml:"status"`
	Capacity  int64  `xml:"capacity"`
	FreeSpace int64  `xml:"freeSpace"`
	Property  string `xml:"property"`
}

// ChannelStatusList is the document of GET
// /ISAPI/ContentMgmt/InputProxy/channels/status.
type ChannelStatusList struct {
	XMLName  xml.Name        `xml:"InputProxyChannelStatusList"`
	Version  string          `xml:"version,attr"`
	XMLNS    string          `xml:"xmlns,attr"`
	Channels []ChannelStatus `xml:"InputProxyChannelStatus"`
}

// ChannelStatus is one channel in a ChannelStatusList.
type ChannelStatus struct {
	ID               int            `xml:"id"`
	Source           SourceDescript `xml:"sourceInputPortDescriptor"`
	Online           bool           `xml:"online"`
	ChanDetectResult string         `xml:"chanDetectResult"`
}

// SourceDescript says where a channel's camera is: personal data where IP
// addresses are, which a client must not keep.
type SourceDescript struct {
	ProxyProtocol        string `xml:"proxyProtocol"`
	AddressingFormatType string `xml:"addressingFormatType"`
	IPAddress            string `xml:"ipAddress"`
	ManagePortNo         int    `xml:"managePortNo"`
	SrcInputPort         int    `xml:"srcInputPort"`
	UserName             string `xml:"userName"`
}

func (s *Sim) serveStorage(w http.ResponseWriter, hddOnly bool) {
	st := s.State()
	ns := Namespaces[s.cfg.Namespace]
	hdds := make([]HDD, 0, len(st.Disks))
	for _, d := range st.Disks {
		hdds = append(hdds, HDD{ID: d.ID, HDDName: d.Name, HDDType: "SATA", Status: d.Status, Capacity: d.CapacityMB, FreeSpace: d.FreeMB, Property: d.Property})
	}
	if hddOnly {
		writeXML(w, http.StatusOK, HDDList{Version: "2.0", XMLNS: ns, HDDs: hdds})
		return
	}
	writeXML(w, http.StatusOK, Storage{Version: "2.0", XMLNS: ns, HDDs: hdds})
}

func (s *Sim) serveChannels(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Channels < 0 {
		s.writeStatus(w, r, "notSupport")
		return
	}
	st := s.State()
	list := ChannelStatusList{Version: "2.0", XMLNS: Namespaces[s.cfg.Namespace]}
	for _, c := range st.Channels {
		detect := "connect"
		if !c.Online {
			detect = "NETWORK_FAIL"
		}
		list.Channels = append(list.Channels, ChannelStatus{
			ID: c.ID,
			Source: SourceDescript{
				ProxyProtocol: "HIKVISION", AddressingFormatType: "ipaddress",
				IPAddress: "192.168.254." + strconv.Itoa(1+c.ID%250), ManagePortNo: 8000, SrcInputPort: 1, UserName: "admin",
			},
			Online:           c.Online,
			ChanDetectResult: detect,
		})
	}
	writeXML(w, http.StatusOK, list)
}

// serveConfigExport sends the opaque configuration file, or the fault.
func (s *Sim) serveConfigExport(w http.ResponseWriter, r *http.Request) {
	f := s.Faults()
	switch {
	case f.ExportNotSupported:
		s.writeStatus(w, r, "notSupport")
		return
	case f.ExportFails:
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="ConfigurationData"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(s.blob)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(s.blob); err != nil {
		s.cfg.Logger.WithError(err).Warn("configuration export broke off")
		return
	}
	s.mu.Lock()
	s.st.ConfigExports++
	s.notify()
	s.mu.Unlock()
	s.cfg.Logger.WithField("bytes", len(s.blob)).Info(fmt.Sprintf("configuration exported (%d bytes)", len(s.blob)))
}
